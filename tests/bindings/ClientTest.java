// The JNI binding's test (tests/e2e/bindings.sh runs it as one device of a federated job):
// open a store with the coordinator's settings, record a history, sync until training stops
// (taking part in a round), recommend, explain, set the region, and the errors a caller sees.
// Prints "REC item score" lines for the script to compare with fedrec-client on the same store.
//   java -Dfedrec.jni=LIB -cp fedrec.jar:. ClientTest STORE TARGET CA TOKEN_FILE KEY_FILE CATALOGUE ITEMS
import java.nio.file.Files;
import java.nio.file.Paths;
import org.fedrec.Client;
import org.fedrec.Explanation;
import org.fedrec.FedrecException;
import org.fedrec.Recommendation;
import org.fedrec.SyncOutcome;

public class ClientTest {
  static void check(boolean ok, String what) {
    if (!ok) {
      System.err.println("FAIL: " + what);
      System.exit(1);
    }
  }

  public static void main(String[] a) throws Exception {
    Client.Config cfg = new Client.Config();
    cfg.store = a[0];
    cfg.target = a[1];
    cfg.caFile = a[2];
    cfg.token = Files.readString(Paths.get(a[3])).trim();
    cfg.coordinatorKey = Files.readString(Paths.get(a[4])).trim();
    cfg.catalogue = a[5];
    String[] items = a[6].split(",");
    try (Client c = Client.open(cfg)) {
      for (String it : items) c.record(it, 1.0f);
      long[] n = c.historySize();
      check(n[0] == items.length && n[1] == items.length, "history size " + n[0] + "/" + n[1]);
      try {
        c.record("no-such-item", 1.0f);
        check(false, "an unknown item was recorded");
      } catch (FedrecException e) {
        check(e.status == 5 && e.getMessage().contains("no-such-item"), "unknown item: status " + e.status + " " + e.getMessage());
      }
      int participated = 0;
      for (int s = 0; s < 400; s++) {
        SyncOutcome o;
        try {
          o = c.sync();
        } catch (FedrecException e) {
          check(e.failure == 1, "sync failed with failure " + e.failure + ": " + e.getMessage());
          Thread.sleep(Math.min(e.retryAfterMs, 1000));
          continue;
        }
        if (o.result == SyncOutcome.PARTICIPATED) participated++;
        if (o.result == SyncOutcome.STOPPED) break;
        Thread.sleep(Math.min(o.retryAfterMs, 500));
      }
      check(participated >= 1, "took part in no round");
      check(c.modelVersion() >= 2, "model version " + c.modelVersion());
      Recommendation[] r = c.recommend(5);
      check(r.length == 5, "recommend gave " + r.length);
      for (int i = 0; i < r.length; i++) {
        for (String it : items) check(!r[i].item.equals(it), "recommended a history item " + it);
        if (i > 0) check(r[i].score <= r[i - 1].score, "scores not descending");
        System.out.println("REC " + r[i].item);
      }
      Explanation x = c.explain(r[0].item);
      float sum = x.rest;
      for (float v : x.byContribution) sum += v;
      check(x.by.length > 0 && x.history == items.length, "explanation of " + x.by.length + " items, history " + x.history);
      check(Math.abs(sum - x.score) <= 1e-3f * Math.max(1f, Math.abs(x.score)), "contributions " + sum + " != score " + x.score);
      check(Math.abs(x.score - r[0].score) <= 1e-4f * Math.max(1f, Math.abs(x.score)), "explain's score differs from recommend's");
      c.setRegion("DE,premium");
      try {
        c.setRegion("D E");
        check(false, "a malformed region was taken");
      } catch (FedrecException e) {
        check(e.status == 5, "malformed region: status " + e.status);
      }
      c.setRegion("");
      System.out.println("PARTICIPATED " + participated);
      c.close();
      try {
        c.recommend(1);
        check(false, "a closed handle answered");
      } catch (FedrecException e) {
        check(e.status == 8, "closed handle: status " + e.status);
      }
    }
    try {
      Client.Config none = new Client.Config();
      none.store = a[0] + ".missing";
      none.mustExist = true;
      Client.open(none);
      check(false, "a missing store was opened");
    } catch (FedrecException e) {
      check(e.getMessage().contains("does not exist"), "missing store: " + e.getMessage());
    }
    System.out.println("java binding: PASS");
  }
}
