import { Type, type Static } from 'typebox';

/** Days of the week, in the order JavaScript's getDay() counts them. */
export const Weekday = { sun: 'sun', mon: 'mon', tue: 'tue', wed: 'wed', thu: 'thu', fri: 'fri', sat: 'sat' } as const;
export type Weekday = (typeof Weekday)[keyof typeof Weekday];
export const weekdays: readonly Weekday[] = ['sun', 'mon', 'tue', 'wed', 'thu', 'fri', 'sat'];

export const WeekdaySchema = Type.Union([
  Type.Literal('sun'),
  Type.Literal('mon'),
  Type.Literal('tue'),
  Type.Literal('wed'),
  Type.Literal('thu'),
  Type.Literal('fri'),
  Type.Literal('sat'),
]);
/** "HH:MM", 24-hour clock, in the schedule's time basis. */
const TimeOfDay = Type.String({ pattern: '^([01][0-9]|2[0-3]):[0-5][0-9]$', description: 'HH:MM in the time basis' });
/** A wall-clock date-time without zone ("2026-03-29T02:30"), read in the schedule's time basis. */
const LocalDateTime = Type.String({
  pattern: '^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}(:[0-9]{2})?$',
  description: 'YYYY-MM-DDTHH:MM[:SS], wall-clock time in the time basis',
});

export const TriggerType = {
  continuous: 'continuous',
  checkIn: 'check-in',
  policyEnforcement: 'policy-enforcement',
  agentStart: 'agent-start',
  repositoryContent: 'repository-content',
  enrolment: 'enrolment',
  afterTask: 'after-task',
  once: 'once',
  interval: 'interval',
  daily: 'daily',
  weekly: 'weekly',
  monthly: 'monthly',
  cron: 'cron',
  onDemand: 'on-demand',
} as const;
export type TriggerType = (typeof TriggerType)[keyof typeof TriggerType];

export const ContinuousTrigger = Type.Object(
  {
    type: Type.Literal('continuous'),
    /** First restart delay; doubles on each quick exit up to maxBackoffSeconds. */
    backoffSeconds: Type.Optional(Type.Integer({ minimum: 1, maximum: 3600 })),
    maxBackoffSeconds: Type.Optional(Type.Integer({ minimum: 1, maximum: 86400 })),
  },
  { additionalProperties: false },
);
export const EventTrigger = Type.Object(
  {
    type: Type.Union([
      Type.Literal('check-in'),
      Type.Literal('policy-enforcement'),
      Type.Literal('agent-start'),
      Type.Literal('enrolment'),
      // New content for the task's product arrived from the repository: a new version of it,
      // or of a definitions package for it, was installed on the device.
      Type.Literal('repository-content'),
    ]),
  },
  { additionalProperties: false },
);
export const AfterTaskTrigger = Type.Object(
  {
    type: Type.Literal('after-task'),
    taskId: Type.String({ minLength: 1 }),
    /** Final states of the other task's run that fire this one; all final states when absent. */
    states: Type.Optional(Type.Array(Type.String(), { minItems: 1 })),
  },
  { additionalProperties: false },
);
export const OnceTrigger = Type.Object({ type: Type.Literal('once'), at: LocalDateTime }, { additionalProperties: false });
export const IntervalTrigger = Type.Object(
  {
    type: Type.Literal('interval'),
    every: Type.Integer({ minimum: 1, maximum: 100000 }),
    unit: Type.Union([Type.Literal('minutes'), Type.Literal('hours')]),
  },
  { additionalProperties: false },
);
export const DailyTrigger = Type.Object(
  { type: Type.Literal('daily'), time: TimeOfDay, everyDays: Type.Optional(Type.Integer({ minimum: 1, maximum: 365 })) },
  { additionalProperties: false },
);
export const WeeklyTrigger = Type.Object(
  { type: Type.Literal('weekly'), days: Type.Array(WeekdaySchema, { minItems: 1, maxItems: 7 }), time: TimeOfDay },
  { additionalProperties: false },
);
/**
 * Monthly: either on day N of the month (`day`, 1-31 or "last"; months without that day
 * run on their last day), or on the nth weekday (`week` 1-5 or "last", with `weekday`; a
 * month without a 5th such weekday is skipped).
 */
export const MonthlyTrigger = Type.Object(
  {
    type: Type.Literal('monthly'),
    time: TimeOfDay,
    day: Type.Optional(Type.Union([Type.Integer({ minimum: 1, maximum: 31 }), Type.Literal('last')])),
    week: Type.Optional(Type.Union([Type.Integer({ minimum: 1, maximum: 5 }), Type.Literal('last')])),
    weekday: Type.Optional(WeekdaySchema),
    months: Type.Optional(Type.Array(Type.Integer({ minimum: 1, maximum: 12 }), { minItems: 1, maxItems: 12 })),
  },
  { additionalProperties: false },
);
/**
 * Five fields (six with seconds first, seven with a year last), or a nickname: @yearly @annually @monthly @weekly
 * @daily @midnight @hourly. When day of month and day of week are both restricted, a day
 * matching either runs (cron's OR rule). Syntax and daylight-saving rules: core/src/cron.ts.
 */
export const CronTrigger = Type.Object(
  { type: Type.Literal('cron'), expression: Type.String({ minLength: 1, maxLength: 200, pattern: '\\S' }) },
  { additionalProperties: false },
);
export const OnDemandTrigger = Type.Object({ type: Type.Literal('on-demand') }, { additionalProperties: false });

export const Trigger = Type.Union([
  ContinuousTrigger,
  EventTrigger,
  AfterTaskTrigger,
  OnceTrigger,
  IntervalTrigger,
  DailyTrigger,
  WeeklyTrigger,
  MonthlyTrigger,
  CronTrigger,
  OnDemandTrigger,
]);
export type Trigger = Static<typeof Trigger>;

export const Retry = Type.Object(
  {
    attempts: Type.Integer({ minimum: 0, maximum: 20, description: 'Retries after the first try' }),
    delaySeconds: Type.Integer({ minimum: 1, maximum: 86400 }),
    /** Each retry waits delaySeconds * factor^(n-1). */
    factor: Type.Optional(Type.Number({ minimum: 1, maximum: 10 })),
  },
  { additionalProperties: false },
);
export type Retry = Static<typeof Retry>;

export const Schedule = Type.Object(
  {
    triggers: Type.Array(Trigger, { minItems: 1, maxItems: 20 }),
    /** "local" (the device's own zone), "UTC", or an IANA zone name such as "Europe/Paris". */
    timeBasis: Type.Optional(Type.String({ minLength: 1, maxLength: 64 })),
    /** A run fires at a random moment within this many minutes after its time. */
    randomizeMinutes: Type.Optional(Type.Integer({ minimum: 0, maximum: 1440 })),
    /** When the device was off at a fire time, run once at start-up after missedDelayMinutes. */
    runMissed: Type.Optional(Type.Boolean()),
    missedDelayMinutes: Type.Optional(Type.Integer({ minimum: 0, maximum: 1440 })),
    /** The run is stopped and marked timed out after this many minutes. */
    stopAfterMinutes: Type.Optional(Type.Integer({ minimum: 1, maximum: 10080 })),
    retry: Type.Optional(Retry),
    /** Absolute instants (ISO 8601 with zone) bounding when the task may fire. */
    startAt: Type.Optional(Type.String({ format: 'date-time' })),
    endAt: Type.Optional(Type.String({ format: 'date-time' })),
    /** How long a run-now waits for an offline device before it expires (default 1440). */
    runNowExpiryMinutes: Type.Optional(Type.Integer({ minimum: 1, maximum: 525600 })),
    /**
     * Runs start only inside the device's maintenance windows (the agent's policy): one due
     * outside waits for the next window, and is skipped if it expires first. No windows: no restriction.
     */
    maintenanceWindowsOnly: Type.Optional(Type.Boolean()),
  },
  { additionalProperties: false },
);
export type Schedule = Static<typeof Schedule>;

export const DEFAULT_RUN_NOW_EXPIRY_MINUTES = 1440;
