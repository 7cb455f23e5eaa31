package org.fedrec;

/**
 * The fedrec client library (include/fedrec/client.h) for Java and Kotlin: the same calls,
 * one to one; the C API is the contract and this class adds no logic. The viewing history
 * stays in the local store; only the masked, noisy update of a round leaves the device.
 * A handle is used by one thread at a time (the methods are synchronized).
 */
public final class Client implements AutoCloseable {
  /** Settings for open (fedrec_client_config): null or 0 takes the value saved in the store. */
  public static final class Config {
    public String store, target, caFile, certFile, keyFile, token, coordinatorKey, catalogue, weights, authorityKey, region;
    public boolean insecure, mustExist;
    public int maxCatalogueMb, maxParticipation, minSeparation, callTimeoutMs, syncTimeoutMs;
  }

  static {
    String path = System.getProperty("fedrec.jni");
    if (path != null) System.load(path);
    else System.loadLibrary("fedrec_jni");
  }

  private long handle;

  private Client(long handle) {
    this.handle = handle;
  }

  /** Opens (or creates) the store; see fedrec_client_open. */
  public static Client open(Config c) throws FedrecException {
    return new Client(nativeOpen(c));
  }

  /** Records one event (an item of the catalogue, weight > 0). */
  public synchronized void record(String item, float weight) throws FedrecException {
    nativeRecord(live(), item, weight);
  }

  /** Events stored, and distinct items among them. */
  public synchronized long[] historySize() throws FedrecException {
    return nativeHistorySize(live());
  }

  /** One sync; on an error the exception's failure says whether retrying helps. */
  public synchronized SyncOutcome sync() throws FedrecException {
    return nativeSync(live());
  }

  /** The k best items not in the history, best first. */
  public synchronized Recommendation[] recommend(int k) throws FedrecException {
    return nativeRecommend(live(), k);
  }

  /** Why item got its score. */
  public synchronized Explanation explain(String item) throws FedrecException {
    return nativeExplain(live(), item);
  }

  /** The device's availability groups ("" none); local, never sent. */
  public synchronized void setRegion(String groups) throws FedrecException {
    nativeSetRegion(live(), groups);
  }

  /** The item's display title, or null. */
  public synchronized String title(String item) {
    return handle == 0 ? null : nativeTitle(handle, item);
  }

  /** The cached model's version (0: none yet). */
  public synchronized long modelVersion() {
    return handle == 0 ? 0 : nativeModelVersion(handle);
  }

  @Override
  public synchronized void close() {
    if (handle != 0) nativeClose(handle);
    handle = 0;
  }

  private long live() throws FedrecException {
    if (handle == 0) throw new FedrecException(8, 0, 0, "fedrec client: the handle is closed");
    return handle;
  }

  private static native long nativeOpen(Config c) throws FedrecException;
  private static native void nativeClose(long h);
  private static native void nativeRecord(long h, String item, float weight) throws FedrecException;
  private static native long[] nativeHistorySize(long h) throws FedrecException;
  private static native SyncOutcome nativeSync(long h) throws FedrecException;
  private static native Recommendation[] nativeRecommend(long h, int k) throws FedrecException;
  private static native Explanation nativeExplain(long h, String item) throws FedrecException;
  private static native void nativeSetRegion(long h, String groups) throws FedrecException;
  private static native String nativeTitle(long h, String item);
  private static native long nativeModelVersion(long h);
}
