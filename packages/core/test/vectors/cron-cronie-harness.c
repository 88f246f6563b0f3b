/*
 * Produces packages/core/test/vectors/cron-cronie.json: cronie's own answers, since cronie's
 * repository has no test data. Not part of any build; kept so the vectors can be regenerated.
 * It links cronie's parser and replays crond's main loop (src/cron.c: set_time, the wake-up
 * cases, find_jobs without CRON_TZ), waking once per real minute in the process's TZ.
 *
 * Build against a cronie checkout (commit in the JSON header), from its top folder:
 *   printf '#define %s\n' 'PACKAGE_VERSION "t"' 'DEBUGGING 1' 'SYSCRONTAB "/etc/crontab"' \
 *     'SPOOL_DIR "/var/spool/cron"' 'CRON_ALLOW "/etc/cron.allow"' 'CRON_DENY "/etc/cron.deny"' \
 *     'HAVE_FLOCK 1' 'HAVE_STRUCT_TM_TM_GMTOFF 1' > config.h
 *   : > cron-paths.h
 *   gcc -w -D_GNU_SOURCE -include unistd.h -include limits.h -I. -Isrc -o crond-sim \
 *       cron-cronie-harness.c src/entry.c src/misc.c src/env.c src/pw_dup.c
 * Run: TZ=Europe/Berlin ./crond-sim START_EPOCH_SECONDS COUNT MAX_DAYS '30 1,2 * * *'
 * Prints FLAGS..., then the UTC instant of each run (one line per run), then END; or ERROR
 * when cronie refuses the line.
 */
#include "config.h"
#define MAIN_PROGRAM
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <pwd.h>
#include <unistd.h>
#include "globals.h"
#include "funcs.h"
static entry *E;
static time_t now;
static long GMT, oldGMT;
static int clockT, isdstPrev = -1;
static int count, printed;
static void run_at(void) { char b[32]; struct tm *g = gmtime(&now); strftime(b, sizeof b, "%Y-%m-%dT%H:%M:%S.000Z", g); printf("%s\n", b); printed++; }
static void find(int vtime, int doWild, int doNonWild) {
  time_t vs = (time_t)vtime * 60; struct tm *tm = gmtime(&vs);
  int minute = tm->tm_min, hour = tm->tm_hour, dom = tm->tm_mday - 1, month = tm->tm_mon, dow = tm->tm_wday;
  entry *e = E;
  if (bit_test(e->minute, minute) && bit_test(e->hour, hour) && bit_test(e->month, month) &&
      (((e->flags & DOM_STAR) || (e->flags & DOW_STAR)) ? (bit_test(e->dow, dow) && bit_test(e->dom, dom)) : (bit_test(e->dow, dow) || bit_test(e->dom, dom)))) {
    if ((doNonWild && !(e->flags & (MIN_STAR | HR_STAR))) || (doWild && (e->flags & (MIN_STAR | HR_STAR)))) run_at();
  }
}
static void set_time(int init) {
  struct tm tm = *localtime(&now);
  if (init || tm.tm_isdst != isdstPrev) { isdstPrev = tm.tm_isdst; GMT = get_gmtoff(&now, &tm); }
  clockT = (int)((now + GMT) / 60);
}
int main(int argc, char **argv) {
  if (argc < 5) return 2;
  tzset();
  long start = atol(argv[1]); count = atoi(argv[2]); long maxDays = atol(argv[3]);
  char line[1024]; snprintf(line, sizeof line, "%s true\n", argv[4]);
  FILE *f = fmemopen(line, strlen(line), "r");
  E = load_entry(f, NULL, getpwuid(getuid()), env_init());
  if (!E) { printf("ERROR\n"); return 0; }
  printf("FLAGS%s%s%s%s\n", E->flags & MIN_STAR ? " MIN_STAR" : "", E->flags & HR_STAR ? " HR_STAR" : "", E->flags & DOM_STAR ? " DOM_STAR" : "", E->flags & DOW_STAR ? " DOW_STAR" : "");
  now = start - start % 60; set_time(1);
  int timeRunning = clockT, virtualTime = clockT; oldGMT = GMT;
  for (long step = 0; step < maxDays * 1440 && printed < count; step++) {
    now += 60; set_time(0);
    timeRunning = clockT;
    int d = timeRunning - virtualTime;
    if (d == 1) { virtualTime = timeRunning; oldGMT = GMT; find(virtualTime, 1, 1); continue; }
    if (d > 180 || d < -180) { virtualTime = timeRunning; oldGMT = GMT; find(timeRunning, 1, 1); }
    else if (d > 5) { find(timeRunning, 1, 0); do { virtualTime++; if (virtualTime >= timeRunning) oldGMT = GMT; find(virtualTime, 0, 1); } while (virtualTime < timeRunning); }
    else if (d > 0) { do { virtualTime++; if (virtualTime >= timeRunning) oldGMT = GMT; find(virtualTime, 1, 1); } while (virtualTime < timeRunning); }
    else find(timeRunning, 1, 0);
  }
  printf("END\n");
  return 0;
}
