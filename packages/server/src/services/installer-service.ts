/**
 * Installer links (Kaspersky's "stand-alone installation package", ePO's "Smart Installer"):
 * per group, a URL carrying an enrolment token (expiry, use limit, revocation) that serves an
 * install script for Linux (systemd), macOS (launchd) or Windows (PowerShell). The one-line
 * command pins the server's public key (curl) or certificate (PowerShell) for the download;
 * the script carries the CA that the agent then pins, the single-executable agent's SHA-256,
 * and enrols the machine into the group. A token's use is counted at enrolment, not when a
 * script is downloaded. See ADR 0010.
 */
import { AppError } from '../errors.ts';
import type { ServerTls } from '../tls/pki.ts';
import { allowed, authorize, Permission, type Actor } from './actor.ts';
import type { Catalog } from './catalog.ts';
import type { EnrolmentService } from './enrolment-service.ts';
import type { AgentBuild, AgentBuilds } from './agent-builds.ts';
import { INSTALL_PLATFORMS, type InstallPlatform, type InstallerView } from '@garrison/protocol';

export { INSTALL_PLATFORMS, type InstallPlatform, type InstallerView };

export const INSTALL_PATH = '/install';
export const SCRIPT_FILES: Record<InstallPlatform, string> = { linux: 'linux.sh', macos: 'macos.sh', windows: 'windows.ps1' };
export const DEFAULT_INSTALL_DIR = '/opt/garrison-agent';
/**
 * A line of every downloaded POSIX install script, which deletes the script when it starts
 * (it carries a live enrolment token). The script checks that "$0" has this line before it
 * removes it, so that run from standard input (`sh -s`, where $0 is the shell) it deletes nothing.
 */
export const SELF_DELETE_MARKER = '# This copy of the script deletes itself when it runs: it holds a live enrolment token.';


/** Single-quotes a value for POSIX sh. */
function shq(v: string): string {
  return `'${v.replace(/'/g, `'\\''`)}'`;
}
/** Single-quotes a value for PowerShell. */
function psq(v: string): string {
  return `'${v.replace(/'/g, "''")}'`;
}

export class InstallerService {
  readonly #enrolment: EnrolmentService;
  readonly #catalog: Catalog;
  readonly #trust: ServerTls | null;
  readonly builds: AgentBuilds;

  constructor(deps: { enrolment: EnrolmentService; catalog: Catalog; trust: ServerTls | null; builds: AgentBuilds }) {
    this.#enrolment = deps.enrolment;
    this.#catalog = deps.catalog;
    this.#trust = deps.trust;
    this.builds = deps.builds;
  }

  #tls(): ServerTls {
    if (!this.#trust) throw new AppError('INSTALLER_UNAVAILABLE', 'installer links need the server to serve TLS itself; it runs with --http behind a proxy');
    return this.#trust;
  }

  /** One-line commands for a link. `serverUrl` is the address machines reach the server at. */
  commands(serverUrl: string, token: string): Record<InstallPlatform, string> {
    const tls = this.#tls();
    const base = `${serverUrl}${INSTALL_PATH}/${token}`;
    const certHash = tls.certFingerprint.toUpperCase();
    // POSIX: downloaded to a file, then run. Not `curl … | sudo sh`: a cut download would run
    // half a script, and a refused download (wrong pin) would still "succeed" with status 0.
    // So that no copy with the live token stays on disk: the subshell's umask 077 keeps the
    // file from other users while it exists, the script deletes itself as it starts, and the
    // final rm removes it when the script never ran (curl failed, sudo refused); the exit
    // status is the script's. The link (it holds the token) goes to curl on its standard input
    // as a config line (`-K -`; printf is a shell builtin): not on curl's command line, which
    // every user of the machine can read.
    const posix = (file: string) =>
      `(umask 077; printf 'url = "%s"\\n' ${shq(`${base}/${file}`)} | curl -sSk --pinnedpubkey ${shq(tls.publicKeyPin)} -K - -o garrison-install.sh && sudo sh garrison-install.sh; r=$?; rm -f garrison-install.sh; exit $r)`;
    return {
      linux: posix('linux.sh'),
      macos: posix('macos.sh'),
      // Nothing on disk: the script is downloaded into memory and run (iex).
      windows:
        `powershell -NoProfile -ExecutionPolicy Bypass -Command "[Net.ServicePointManager]::SecurityProtocol='Tls12'; ` +
        `[Net.ServicePointManager]::ServerCertificateValidationCallback={param($s,$c) [BitConverter]::ToString([Security.Cryptography.SHA256]::Create().ComputeHash($c.GetRawCertData())).Replace('-','') -eq '${certHash}'}; ` +
        `iex (New-Object Net.WebClient).DownloadString('${base}/windows.ps1')"`,
    };
  }

  /**
   * The command push installation runs over SSH: downloads with the key pinned, runs, removes
   * the script. It holds the token, so push-service.ts sends it on the session's standard
   * input, never as the command line; inside it the link reaches curl on curl's standard input
   * (`-K -`, printf being a shell builtin), so no process of the host shows the token. The
   * script (mktemp: 0600, root's) deletes itself as it starts; the rm is for when it never ran.
   */
  unixCommand(serverUrl: string, token: string, installDir: string): string {
    const tls = this.#tls();
    const url = `${serverUrl}${INSTALL_PATH}/${token}/linux.sh`;
    return `f=$(mktemp /tmp/garrison-install.XXXXXX) && printf 'url = "%s"\\n' ${shq(url)} | curl -sSk --pinnedpubkey ${shq(tls.publicKeyPin)} -K - -o "$f" && GARRISON_INSTALL_DIR=${shq(installDir)} sh "$f" </dev/null; r=$?; rm -f "$f"; exit $r`;
  }

  /** The link's view, and its token's value (for callers that run the link themselves, as push installation does). */
  async create(actor: Actor, input: { groupId: string; name?: string; expiresInMinutes?: number; maxUses?: number; serverUrl: string }): Promise<InstallerView & { tokenValue: string }> {
    const tls = this.#tls();
    if (!this.#catalog.group(input.groupId) || !allowed(actor, Permission.read, this.#catalog.tree, [input.groupId])) throw new AppError('NOT_FOUND', `no group ${input.groupId}`);
    authorize(actor, Permission.manageTokens, this.#catalog.tree, [input.groupId]);
    const t = await this.#enrolment.createToken(actor, {
      groupId: input.groupId,
      name: input.name ?? `installer for ${this.#catalog.tree.path(input.groupId)}`,
      // An installer link is meant to be shared; a week unless told otherwise.
      expiresInMinutes: input.expiresInMinutes ?? 7 * 24 * 60,
      ...(input.maxUses ? { maxUses: input.maxUses } : {}),
    });
    const { token, ...view } = t;
    return {
      tokenValue: token,
      token: view,
      url: `${input.serverUrl}${INSTALL_PATH}/${token}`,
      caFingerprint: tls.caFingerprint,
      certFingerprint: tls.certFingerprint,
      publicKeyPin: tls.publicKeyPin,
      commands: this.commands(input.serverUrl, token),
      agentPlatforms: await this.builds.platforms(),
    };
  }

  /** The install script for a link, or throws TOKEN_* / AGENT_BUILD_UNAVAILABLE (rendered as an error script by the route). */
  async script(token: string, platform: InstallPlatform, serverUrl: string): Promise<string> {
    const tls = this.#tls();
    const t = await this.#enrolment.checkToken(token);
    const groupPath = this.#catalog.tree.path(t.groupId);
    const host = (await this.builds.platforms())[0]!;
    const wanted = platform === 'linux' ? host.startsWith('linux-') : platform === 'macos' ? host.startsWith('darwin-') : host.startsWith('win32-');
    const build = wanted ? await this.builds.get(host) : null;
    const ctx = { serverUrl, token, groupPath, tls, build };
    if (platform === 'linux') return linuxScript(ctx);
    if (platform === 'macos') return macosScript(ctx);
    return windowsScript(ctx);
  }

  /** Checks the link before handing out the agent executable. */
  async agentFor(token: string, platform: string): Promise<AgentBuild> {
    await this.#enrolment.checkToken(token);
    return this.builds.get(platform);
  }
}

interface ScriptContext {
  serverUrl: string;
  /** Null for an offline installation package: the token is its 0600 file beside the script. */
  token: string | null;
  groupPath: string;
  tls: ServerTls;
  /** The agent build for this platform, if the server has one. */
  build: AgentBuild | null;
}

/**
 * The install script of an offline installation package (server task "installation-package"):
 * the link's script, with the agent taken from the package instead of downloaded, the token
 * read from the package's `enrolment-token` file (0600, never in the script), and the
 * packaged products (`packages/<sha256>.tgz`) handed to the agent's `offline-packages` folder.
 */
export function offlineInstallScript(platform: InstallPlatform, c: Omit<ScriptContext, 'token'>): string {
  const ctx = { ...c, token: null };
  if (platform === 'linux') return linuxScript(ctx);
  if (platform === 'macos') return macosScript(ctx);
  return windowsScript(ctx);
}

/** A script that only reports why the link cannot install (an expired token, say). */
export function errorScript(platform: InstallPlatform, code: string, message: string): string {
  if (platform === 'windows') return `Write-Error ${psq(`garrison-install: ${code}: ${message}`)}\nexit 5\n`;
  return `#!/bin/sh\necho ${shq(`garrison-install: error: ${code}: ${message}`)} >&2\nexit 5\n`;
}

/** The parts the two POSIX scripts share: checks, download and verification, enrolment. */
function posixCommon(c: ScriptContext, os: 'Linux' | 'Darwin', defaultDir: string): string {
  const archMap = os === 'Linux' ? 'x86_64|amd64) ARCH=x64 ;; aarch64|arm64) ARCH=arm64 ;;' : 'x86_64) ARCH=x64 ;; arm64) ARCH=arm64 ;;';
  const plat = os === 'Linux' ? 'linux' : 'darwin';
  const offline = c.token === null;
  return `#!/bin/sh
# Garrison agent ${offline ? 'offline installation package' : 'installer'} for the group "${c.groupPath.replace(/[\r\n"]/g, ' ')}" of ${c.serverUrl}
# Installs the agent as a service in its own folder, verifies it, and enrols this machine.
${offline ? "# Nothing is downloaded: the agent, the enrolment token and the group's products come from this\n# package's folder; the agent verifies each product (SHA-256, the server's signature) before use.\n" : ''}# Environment: GARRISON_INSTALL_DIR (default ${defaultDir}), GARRISON_NAME (device name),
# GARRISON_NO_START=1 (install and enrol, do not start the service).
${
    offline
      ? ''
      : `${SELF_DELETE_MARKER}
# (The shell goes on reading the script from the file it has open.)
if [ -f "$0" ] && grep -qxF ${shq(SELF_DELETE_MARKER)} "$0" 2>/dev/null; then rm -f -- "$0"; fi
`
  }set -eu
# Whatever the caller's umask (the one-line command runs this under umask 077): the files it
# installs are modes it sets, and a background agent started here does not inherit 077.
umask 022
SERVER=${shq(c.serverUrl)}
${offline ? '' : `TOKEN=${shq(c.token!)}\n`}CA_FINGERPRINT=${shq(c.tls.caFingerprint)}
PIN=${shq(c.tls.publicKeyPin)}
AGENT_PLATFORMS=${shq(c.build ? c.build.platform : '')}
AGENT_SHA256=${shq(c.build ? c.build.sha256 : '')}
AGENT_VERSION=${shq(c.build ? c.build.version : '')}
INSTALL_DIR="\${GARRISON_INSTALL_DIR:-${defaultDir}}"
say() { echo "garrison-install: $*"; }
fail() { code=$1; shift; echo "garrison-install: error: $*" >&2; exit "$code"; }

[ "$(uname -s)" = ${os} ] || fail 2 "this installer is for ${os === 'Linux' ? 'Linux' : 'macOS'}, not $(uname -s)"
case "$(uname -m)" in ${archMap} *) fail 2 "unsupported processor $(uname -m)" ;; esac
PLATFORM="${plat}-$ARCH"
[ -n "$AGENT_PLATFORMS" ] || fail 2 "this server has no ${os === 'Linux' ? 'Linux' : 'macOS'} agent build (it builds for its own platform only)"
[ "$PLATFORM" = "$AGENT_PLATFORMS" ] || fail 2 "this server has an agent for $AGENT_PLATFORMS, not for $PLATFORM"
case "$INSTALL_DIR" in /*) ;; *) fail 3 "GARRISON_INSTALL_DIR must be an absolute path" ;; esac
if [ "$(id -u)" != 0 ] && [ -z "\${GARRISON_INSTALL_DIR:-}" ]; then fail 3 ${offline ? '"run as root (sudo sh $0)"' : '"run as root: run the one-line command again, with sudo (this copy of the script has removed itself)"'}; fi
${
    offline
      ? `HERE="$(cd "$(dirname "$0")" && pwd)"
[ -r "$HERE/enrolment-token" ] || fail 3 "cannot read $HERE/enrolment-token (run as root: the file is readable by its owner only)"
TOKEN="$(cat "$HERE/enrolment-token")"`
      : 'command -v curl >/dev/null 2>&1 || fail 3 "curl is required"'
  }
sha256() { if command -v sha256sum >/dev/null 2>&1; then sha256sum "$1" | cut -d' ' -f1; else shasum -a 256 "$1" | cut -d' ' -f1; fi; }

STATE="$INSTALL_DIR/state"
REPLACE=""
if [ -f "$STATE/credential.json" ]; then
  if [ -f "$INSTALL_DIR/ca.fingerprint" ] && [ "$(cat "$INSTALL_DIR/ca.fingerprint")" = "$CA_FINGERPRINT" ] && [ -z "\${GARRISON_REENROL:-}" ]; then
    say "the agent is already installed in $INSTALL_DIR and enrolled with this server; set GARRISON_REENROL=1 to enrol it again"
    exit 0
  fi
  say "an agent enrolled elsewhere is installed in $INSTALL_DIR: it is enrolled anew, its previous state is discarded"
  REPLACE="--replace"
  if [ -x "$INSTALL_DIR/stop-service.sh" ]; then sh "$INSTALL_DIR/stop-service.sh" || true; fi
fi
mkdir -p "$INSTALL_DIR" "$STATE"
chmod 755 "$INSTALL_DIR"
chmod 700 "$STATE"

PART="$INSTALL_DIR/garrison-agent.part"
rm -f "$PART"
${
    offline
      ? `say "installing the agent $AGENT_VERSION for $PLATFORM from $HERE"
cp "$HERE/garrison-agent" "$PART" || { rm -f "$PART"; fail 4 "cannot copy $HERE/garrison-agent"; }`
      : `say "downloading the agent $AGENT_VERSION for $PLATFORM"
# The URL holds the token: curl reads it from standard input, not from its command line.
printf 'url = "%s"\\n' "$SERVER/install/$TOKEN/agent/$PLATFORM" | curl -sSf -k --pinnedpubkey "$PIN" --retry 3 -K - -o "$PART" || { rm -f "$PART"; fail 4 "the agent download failed"; }`
  }
GOT="$(sha256 "$PART")"
if [ "$GOT" != "$AGENT_SHA256" ]; then rm -f "$PART"; fail 4 "the ${offline ? 'packaged' : 'downloaded'} agent's SHA-256 is $GOT, not $AGENT_SHA256: tampered or corrupted, nothing installed"; fi
chmod 755 "$PART"
mv -f "$PART" "$INSTALL_DIR/garrison-agent"

cat > "$INSTALL_DIR/ca.pem" <<'GARRISON_CA_EOF'
${c.tls.caPem.trim()}
GARRISON_CA_EOF
printf '%s\\n' "$CA_FINGERPRINT" > "$INSTALL_DIR/ca.fingerprint"

say "enrolling into \\"${c.groupPath.replace(/[\r\n"\\$`]/g, ' ')}\\""
# The token goes to the agent on its standard input (printf is a shell builtin): never on a
# command line, nor in the environment of a process.
if ! OUT="$(printf '%s\\n' "$TOKEN" | "$INSTALL_DIR/garrison-agent" enrol --token-stdin --state "$STATE" --server "$SERVER" --ca "$INSTALL_DIR/ca.pem" --ca-fingerprint "$CA_FINGERPRINT" $REPLACE \${GARRISON_NAME:+--name "$GARRISON_NAME"} 2>&1)"; then
  echo "$OUT" >&2
  fail 5 "enrolment failed"
fi
DEVICE_ID="$(printf '%s\\n' "$OUT" | sed -n 's/^enrolled device //p' | head -n1)"
printf '{"installDir":"%s","uninstallScript":"%s"}\\n' "$INSTALL_DIR" "$INSTALL_DIR/uninstall.sh" > "$STATE/install.json"
${
    offline
      ? `# Copied after enrolment (which empties a replaced agent's state) to where the agent looks
# for a package before downloading it (products.ts, offlineDir).
N=0
for f in "$HERE"/packages/*.tgz; do
  [ -f "$f" ] || continue
  mkdir -p "$STATE/offline-packages" && chmod 700 "$STATE/offline-packages"
  cp "$f" "$STATE/offline-packages/" || fail 4 "cannot copy $f"
  N=$((N + 1))
done
[ "$N" = 0 ] || say "$N product package(s) handed to the agent, which verifies each before installing it"
`
      : ''
  }`;
}

function linuxScript(c: ScriptContext): string {
  return (
    posixCommon(c, 'Linux', DEFAULT_INSTALL_DIR) +
    `
UNIT_DIR="\${GARRISON_UNIT_DIR:-/etc/systemd/system}"
UNIT="$UNIT_DIR/garrison-agent.service"
mkdir -p "$UNIT_DIR"
cat > "$UNIT" <<GARRISON_UNIT_EOF
[Unit]
Description=Garrison agent (endpoint management)
After=network-online.target
Wants=network-online.target

[Service]
Type=simple
ExecStart=$INSTALL_DIR/garrison-agent --state $STATE -- --quiet
# The launcher exits 0 only when stopped or when the agent was uninstalled.
Restart=on-failure
RestartSec=5
# Products the agent starts (their services) outlive an agent restart.
KillMode=process
Environment=GARRISON_INSTALL_DIR=$INSTALL_DIR
WorkingDirectory=$INSTALL_DIR

[Install]
WantedBy=multi-user.target
GARRISON_UNIT_EOF
chmod 644 "$UNIT"

cat > "$INSTALL_DIR/stop-service.sh" <<GARRISON_STOP_EOF
#!/bin/sh
if [ -d /run/systemd/system ] && [ "$UNIT_DIR" = /etc/systemd/system ]; then systemctl stop garrison-agent 2>/dev/null || true
elif [ -f "$INSTALL_DIR/agent.pid" ]; then kill "\\$(cat "$INSTALL_DIR/agent.pid")" 2>/dev/null || true; fi
GARRISON_STOP_EOF
cat > "$INSTALL_DIR/uninstall.sh" <<GARRISON_UNINSTALL_EOF
#!/bin/sh
# Removes the Garrison agent from this machine (the agent tells the server first when asked from the console).
sh "$INSTALL_DIR/stop-service.sh"
if [ -d /run/systemd/system ] && [ "$UNIT_DIR" = /etc/systemd/system ]; then systemctl disable garrison-agent 2>/dev/null || true; fi
rm -f "$UNIT"
if [ -d /run/systemd/system ] && [ "$UNIT_DIR" = /etc/systemd/system ]; then systemctl daemon-reload 2>/dev/null || true; fi
rm -rf "$INSTALL_DIR"
echo "garrison-install: the agent was removed from $INSTALL_DIR"
GARRISON_UNINSTALL_EOF
chmod 755 "$INSTALL_DIR/stop-service.sh" "$INSTALL_DIR/uninstall.sh"

if [ -n "\${GARRISON_NO_START:-}" ]; then
  say "installed; not started (GARRISON_NO_START)"
elif [ -d /run/systemd/system ] && [ "$UNIT_DIR" = /etc/systemd/system ]; then
  systemctl daemon-reload
  systemctl enable --now garrison-agent >/dev/null 2>&1 || fail 6 "systemctl could not start garrison-agent"
  say "the garrison-agent service is running"
else
  # No systemd (a container, say): run it in the background; it will not start at boot.
  nohup "$INSTALL_DIR/garrison-agent" --state "$STATE" -- --quiet >> "$INSTALL_DIR/agent.log" 2>&1 &
  echo $! > "$INSTALL_DIR/agent.pid"
  say "no systemd here: the agent runs in the background (pid $!) and will not start at boot"
fi
say "enrolled device $DEVICE_ID"
`
  );
}

function macosScript(c: ScriptContext): string {
  return (
    posixCommon(c, 'Darwin', '/usr/local/garrison-agent') +
    `
PLIST="\${GARRISON_LAUNCHD_DIR:-/Library/LaunchDaemons}/com.garrison.agent.plist"
cat > "$PLIST" <<GARRISON_PLIST_EOF
<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">
<plist version="1.0">
<dict>
  <key>Label</key><string>com.garrison.agent</string>
  <key>ProgramArguments</key>
  <array><string>$INSTALL_DIR/garrison-agent</string><string>--state</string><string>$STATE</string><string>--</string><string>--quiet</string></array>
  <key>RunAtLoad</key><true/>
  <key>KeepAlive</key><true/>
  <key>WorkingDirectory</key><string>$INSTALL_DIR</string>
  <key>StandardErrorPath</key><string>$INSTALL_DIR/agent.log</string>
</dict>
</plist>
GARRISON_PLIST_EOF
chmod 644 "$PLIST"
cat > "$INSTALL_DIR/stop-service.sh" <<GARRISON_STOP_EOF
#!/bin/sh
launchctl bootout system/com.garrison.agent 2>/dev/null || true
GARRISON_STOP_EOF
cat > "$INSTALL_DIR/uninstall.sh" <<GARRISON_UNINSTALL_EOF
#!/bin/sh
sh "$INSTALL_DIR/stop-service.sh"
rm -f "$PLIST"
rm -rf "$INSTALL_DIR"
echo "garrison-install: the agent was removed from $INSTALL_DIR"
GARRISON_UNINSTALL_EOF
chmod 755 "$INSTALL_DIR/stop-service.sh" "$INSTALL_DIR/uninstall.sh"
if [ -z "\${GARRISON_NO_START:-}" ]; then
  launchctl bootstrap system "$PLIST" || fail 6 "launchctl could not load $PLIST"
  say "the com.garrison.agent daemon is running"
fi
say "enrolled device $DEVICE_ID"
`
  );
}

function windowsScript(c: ScriptContext): string {
  const offline = c.token === null;
  return `# Garrison agent ${offline ? 'offline installation package' : 'installer'} for the group "${c.groupPath.replace(/[\r\n"]/g, ' ')}" of ${c.serverUrl} (PowerShell 5.1 or later, as Administrator)
${
  offline
    ? ''
    : `# Run from a file, this copy deletes itself at once: it holds a live enrolment token. (PowerShell
# has read the whole script already; the one-line command runs it from memory, without a file.)
if ($PSCommandPath) { Remove-Item -LiteralPath $PSCommandPath -Force -ErrorAction SilentlyContinue }
`
}$ErrorActionPreference = 'Stop'
$Server = ${psq(c.serverUrl)}
${offline ? "$Here = $PSScriptRoot\n$Token = (Get-Content -Raw (Join-Path $Here 'enrolment-token')).Trim()" : `$Token = ${psq(c.token!)}`}
$CaFingerprint = ${psq(c.tls.caFingerprint)}
$CertHash = ${psq(c.tls.certFingerprint.toUpperCase())}
$AgentPlatform = ${psq(c.build ? c.build.platform : '')}
$AgentSha256 = ${psq(c.build ? c.build.sha256.toUpperCase() : '')}
$InstallDir = if ($env:GARRISON_INSTALL_DIR) { $env:GARRISON_INSTALL_DIR } else { Join-Path $env:ProgramFiles 'Garrison Agent' }
$State = Join-Path $env:ProgramData 'Garrison\\state'
function Fail($code, $msg) { Write-Error "garrison-install: error: $msg"; exit $code }
if (-not ([Security.Principal.WindowsPrincipal][Security.Principal.WindowsIdentity]::GetCurrent()).IsInRole([Security.Principal.WindowsBuiltInRole]::Administrator)) { Fail 3 'run as Administrator' }
$Arch = if ($env:PROCESSOR_ARCHITECTURE -eq 'ARM64') { 'arm64' } else { 'x64' }
if (-not $AgentPlatform) { Fail 2 'this server has no Windows agent build (it builds for its own platform only)' }
if ($AgentPlatform -ne "win32-$Arch") { Fail 2 "this server has an agent for $AgentPlatform, not for win32-$Arch" }
[Net.ServicePointManager]::SecurityProtocol = 'Tls12'
[Net.ServicePointManager]::ServerCertificateValidationCallback = { param($s, $c) [BitConverter]::ToString([Security.Cryptography.SHA256]::Create().ComputeHash($c.GetRawCertData())).Replace('-', '') -eq $CertHash }
New-Item -ItemType Directory -Force -Path $InstallDir, $State | Out-Null
$Exe = Join-Path $InstallDir 'garrison-agent.exe'
$Part = "$Exe.part"
${offline ? "Copy-Item (Join-Path $Here 'garrison-agent.exe') $Part" : '(New-Object Net.WebClient).DownloadFile("$Server/install/$Token/agent/$AgentPlatform", $Part)'}
$Got = (Get-FileHash -Algorithm SHA256 $Part).Hash
if ($Got -ne $AgentSha256) { Remove-Item $Part; Fail 4 "the ${offline ? 'packaged' : 'downloaded'} agent's SHA-256 is $Got, not $AgentSha256: tampered or corrupted, nothing installed" }
Move-Item -Force $Part $Exe
Set-Content -Path (Join-Path $InstallDir 'ca.pem') -Value @'
${c.tls.caPem.trim()}
'@
# The token reaches the agent in its environment (which the agent removes from its own at
# start), never on its command line; it is removed from this one as soon as the agent has run.
$env:GARRISON_ENROL_TOKEN = $Token
try { $Out = & $Exe enrol --state $State --server $Server --ca (Join-Path $InstallDir 'ca.pem') --ca-fingerprint $CaFingerprint 2>&1 }
finally { Remove-Item Env:GARRISON_ENROL_TOKEN -ErrorAction SilentlyContinue }
if ($LASTEXITCODE -ne 0) { Write-Output $Out; Fail 5 'enrolment failed' }
${
  offline
    ? `$Offline = Join-Path $State 'offline-packages'
New-Item -ItemType Directory -Force -Path $Offline | Out-Null
Get-ChildItem (Join-Path $Here 'packages') -Filter '*.tgz' -ErrorAction SilentlyContinue | Copy-Item -Destination $Offline
`
    : ''
}# The agent runs as SYSTEM at start-up and is restarted when it stops (a scheduled task: the
# single-executable agent does not speak the service control protocol yet).
$Action = New-ScheduledTaskAction -Execute $Exe -Argument "--state \`"$State\`" -- --quiet"
$Trigger = New-ScheduledTaskTrigger -AtStartup
$Settings = New-ScheduledTaskSettingsSet -RestartCount 999 -RestartInterval (New-TimeSpan -Minutes 1) -ExecutionTimeLimit ([TimeSpan]::Zero)
Register-ScheduledTask -TaskName 'Garrison Agent' -Action $Action -Trigger $Trigger -Settings $Settings -User 'SYSTEM' -RunLevel Highest -Force | Out-Null
Start-ScheduledTask -TaskName 'Garrison Agent'
Write-Output "garrison-install: $($Out | Select-String -Pattern '^enrolled device')"
`;
}
