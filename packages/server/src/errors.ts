import { errorCodeInfo, type ErrorBody, type ErrorCode } from '@garrison/protocol';

/** The one error type services throw; the HTTP layer and agent hub turn it into ErrorBody. */
export class AppError extends Error {
  readonly code: ErrorCode;
  readonly details: unknown;
  constructor(code: ErrorCode, message: string, details?: unknown) {
    super(message);
    this.name = 'AppError';
    this.code = code;
    this.details = details;
  }
  get status(): number {
    return errorCodeInfo[this.code].status;
  }
  toBody(requestId?: string): ErrorBody {
    return {
      error: {
        code: this.code,
        message: this.message,
        retryable: errorCodeInfo[this.code].retryable,
        ...(this.details === undefined ? {} : { details: this.details }),
        ...(requestId ? { requestId } : {}),
      },
    };
  }
}

export function notFound(what: string, id: string): AppError {
  return new AppError('NOT_FOUND', `${what} ${id} does not exist`);
}
