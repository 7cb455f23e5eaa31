package org.fedrec;

/** A fedrec call that failed: the C library's status (include/fedrec/status.h) and message. */
public class FedrecException extends Exception {
  private static final long serialVersionUID = 1L;
  /** The fedrec_status number (1 NOMEM, 2 IO, 3 PARSE, 4 LIMIT, 5 ARG, 6 NUMERIC, 7 EMPTY, 8 STATE, 9 AUTH). */
  public final int status;
  /** For sync: the fedrec_sync_failure (1 network: retry; 2 config; 3 auth; 4 integrity); else 0. */
  public final int failure;
  /** For sync: when to try again, in milliseconds (with backoff and jitter); else 0. */
  public final int retryAfterMs;

  public FedrecException(int status, int failure, int retryAfterMs, String message) {
    super(message);
    this.status = status;
    this.failure = failure;
    this.retryAfterMs = retryAfterMs;
  }
}
