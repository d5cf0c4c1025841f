// KafkaPing waits until a Kafka broker answers real requests.
//
// It is used by scripts/kafka.sh ("start" and "status"). An open port is not
// enough: in KRaft mode the broker listens before it has caught up with the
// metadata log and registered, and topic creation fails until then. This probe
// asks for the cluster's description and its topic list (both answered only by a
// broker that is registered with the controller) until both succeed or the
// deadline passes.
//
// Usage: java -cp <kafka classpath>:<classes> KafkaPing host:port timeoutSeconds
// Exit status 0 when the broker answered, 1 on timeout.

import java.util.Properties;
import java.util.concurrent.TimeUnit;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;

public final class KafkaPing {
  private KafkaPing() {}

  public static void main(String[] args) throws Exception {
    if (args.length < 2) {
      System.err.println("usage: KafkaPing host:port timeoutSeconds");
      System.exit(2);
    }
    long deadline = System.nanoTime() + Long.parseLong(args[1]) * 1_000_000_000L;
    Properties p = new Properties();
    p.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, args[0]);
    p.put(AdminClientConfig.REQUEST_TIMEOUT_MS_CONFIG, "2000");
    p.put(AdminClientConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, "3000");
    p.put(AdminClientConfig.RECONNECT_BACKOFF_MS_CONFIG, "100");
    p.put(AdminClientConfig.RECONNECT_BACKOFF_MAX_MS_CONFIG, "200");
    Exception last = null;
    try (Admin admin = Admin.create(p)) {
      while (System.nanoTime() < deadline) {
        try {
          int nodes = admin.describeCluster().nodes().get(3, TimeUnit.SECONDS).size();
          if (nodes > 0) {
            admin.listTopics().names().get(3, TimeUnit.SECONDS);
            System.out.println("kafka " + args[0] + " answers (" + nodes + " broker)");
            return;
          }
        } catch (Exception e) {
          last = e;
        }
        Thread.sleep(200);
      }
    }
    System.err.println("kafka " + args[0] + " did not answer: " + last);
    System.exit(1);
  }
}
