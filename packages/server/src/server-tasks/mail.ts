/**
 * Mail delivery over SMTP with nodemailer: one connection per message (reports are sent a
 * few times a day, so a pool would only hold idle sockets), TLS as the settings say, and
 * errors turned into sentences that say what to fix. The password arrives resolved from the
 * secret store; it is handed to nodemailer and nowhere else (nodemailer's own logger stays
 * off, and every error text is scrubbed of it before it leaves this module).
 */
import { isIP } from 'node:net';
import nodemailer from 'nodemailer';
import type SMTPTransport from 'nodemailer/lib/smtp-transport/index.js';

export const SMTP_SECURITY = ['tls', 'starttls', 'none'] as const;
export type SmtpSecurity = (typeof SMTP_SECURITY)[number];

export interface SmtpSettings {
  host: string;
  port: number;
  /** "tls": TLS from the first byte (usually port 465); "starttls": upgrade required (587); "none": plain text. */
  security: SmtpSecurity;
  user?: string;
  /** Resolved from the secret reference before the task runs. */
  password?: string;
  from: string;
  rejectUnauthorized?: boolean;
  timeoutSeconds?: number;
}

export interface MailMessage {
  to: readonly string[];
  cc?: readonly string[];
  subject: string;
  html: string;
  text: string;
  /** Files streamed from disk, never read whole into memory. */
  attachments: readonly { filename: string; path: string; contentType: string }[];
}

export interface MailSent {
  messageId: string;
  accepted: string[];
  rejected: string[];
}

export const DEFAULT_SMTP_TIMEOUT_SECONDS = 60;

/** Sends one message; throws an Error whose message says what went wrong and what to check. */
export async function sendMail(smtp: SmtpSettings, message: MailMessage, signal?: AbortSignal): Promise<MailSent> {
  const timeout = (smtp.timeoutSeconds ?? DEFAULT_SMTP_TIMEOUT_SECONDS) * 1000;
  const options: SMTPTransport.Options = {
    host: smtp.host,
    port: smtp.port,
    secure: smtp.security === 'tls',
    requireTLS: smtp.security === 'starttls',
    ignoreTLS: smtp.security === 'none',
    ...(smtp.user ? { auth: { user: smtp.user, pass: smtp.password ?? '' } } : {}),
    // SNI carries host names only (RFC 6066); for an IP address the certificate is checked against the IP.
    tls: { rejectUnauthorized: smtp.rejectUnauthorized ?? true, ...(isIP(smtp.host.replace(/^\[|\]$/g, '')) ? {} : { servername: smtp.host }) },
    connectionTimeout: timeout,
    greetingTimeout: timeout,
    socketTimeout: timeout,
    logger: false,
    debug: false,
    disableUrlAccess: true,
  };
  const transport = nodemailer.createTransport(options);
  const where = `${smtp.host}:${smtp.port}`;
  // nodemailer's one-off SMTP connection takes no abort signal: a stop answers at once, and
  // the abandoned connection ends at its own timeout (or when the server answers).
  let onAbort = () => {};
  const aborted = new Promise<never>((_, reject) => {
    onAbort = () => reject(signal!.reason instanceof Error ? signal!.reason : new Error('stopped'));
    if (signal?.aborted) onAbort();
    else signal?.addEventListener('abort', onAbort, { once: true });
  });
  try {
    const info = await Promise.race([
      transport.sendMail({
        from: smtp.from,
        to: [...message.to],
        ...(message.cc?.length ? { cc: [...message.cc] } : {}),
        subject: message.subject,
        html: message.html,
        text: message.text,
        attachments: message.attachments.map((a) => ({ filename: a.filename, path: a.path, contentType: a.contentType })),
      }),
      aborted,
    ]);
    return { messageId: info.messageId, accepted: info.accepted.map(String), rejected: info.rejected.map(String) };
  } catch (err) {
    if (signal?.aborted) throw err;
    throw new Error(scrub(explain(err as SmtpError, where, smtp), smtp.password));
  } finally {
    signal?.removeEventListener('abort', onAbort);
    transport.close();
  }
}

interface SmtpError extends Error {
  code?: string;
  responseCode?: number;
  response?: string;
  command?: string;
}

function explain(err: SmtpError, where: string, smtp: SmtpSettings): string {
  const said = err.response ? ` (the server said: ${err.response.trim().slice(0, 300)})` : '';
  const text = err.message ?? String(err);
  switch (err.code) {
    case 'EAUTH':
      return `the SMTP server ${where} refused the login of user "${smtp.user ?? ''}"${said}: check smtp.user and the secret that smtp.password refers to`;
    case 'EENVELOPE':
      return `the SMTP server ${where} refused the sender or the recipients${said}: check smtp.from, to and cc`;
    case 'ETIMEDOUT':
      return `the SMTP server ${where} did not answer within ${smtp.timeoutSeconds ?? DEFAULT_SMTP_TIMEOUT_SECONDS} s: check smtp.host, smtp.port and smtp.security (port 465 usually wants "tls", 587 "starttls")`;
    case 'EMESSAGE':
    case 'EMESSAGESIZE':
      return `the SMTP server ${where} refused the message${said}: it may be too large; lower maxAttachmentMegabytes or deliver to a folder`;
  }
  if (/certificate|self[- ]signed|unable to verify|CERT_|hostname\/IP does not match/i.test(text)) {
    return `the TLS certificate of the SMTP server ${where} is not trusted (${text}): give the mail server a certificate from a trusted authority, or set smtp.rejectUnauthorized to false on a network you trust`;
  }
  if (/STARTTLS/i.test(text) || (err.code === 'ETLS' && smtp.security === 'starttls')) {
    return `the SMTP server ${where} does not offer STARTTLS (${text}): use security "tls" if it speaks TLS from the start, or fix the server's TLS set-up`;
  }
  if (/ECONNREFUSED|ENOTFOUND|EAI_AGAIN|EHOSTUNREACH|ENETUNREACH/.test(text)) {
    return `could not connect to the SMTP server ${where} (${text}): check smtp.host and smtp.port`;
  }
  if (/wrong version number|packet length too long|unknown protocol/i.test(text)) {
    return `TLS with the SMTP server ${where} failed (${text}): smtp.security "${smtp.security}" may not match what the port speaks (465 usually "tls", 587 "starttls")`;
  }
  return `sending the mail through ${where} failed: ${text}${said && !text.includes(err.response!.trim()) ? said : ''}`;
}

/** Removes the password from a text, however it ended up there (never expected; cheap to be sure). */
export function scrub(text: string, password: string | undefined): string {
  if (!password) return text;
  // AUTH LOGIN carries it in base64: scrub that form too.
  return text.replaceAll(password, '[secret]').replaceAll(Buffer.from(password).toString('base64'), '[secret]');
}
