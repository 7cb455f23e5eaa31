package org.fedrec;

/** What one sync did (fedrec_sync_outcome). */
public final class SyncOutcome {
  public static final int NOT_SELECTED = 0, PARTICIPATED = 1, LEFT_OUT = 2, STOPPED = 3, SPENT = 4;
  public final int result;
  public final long round, modelVersion, resumedAt;
  public final int retryAfterMs;
  public final String detail;

  SyncOutcome(int result, long round, long modelVersion, int retryAfterMs, long resumedAt, String detail) {
    this.result = result;
    this.round = round;
    this.modelVersion = modelVersion;
    this.retryAfterMs = retryAfterMs;
    this.resumedAt = resumedAt;
    this.detail = detail;
  }
}
