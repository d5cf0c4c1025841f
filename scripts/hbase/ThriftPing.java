// ThriftPing waits until an HBase Thrift2 gateway answers real requests.
//
// It is used by scripts/hbase.sh ("start" and "status"). An open TCP port is not
// enough: the gateway accepts connections long before the master has finished
// initialising and hbase:meta is online, so this probe keeps issuing two calls
// that need all of it — getNamespaceDescriptor("default") (answered only by an
// initialised master), getTableNamesByPattern, and an exists() against
// hbase:meta (answered by the region server) — until all succeed or the deadline
// passes. Table DDL issued right after a successful probe does not race the
// master's initialisation.
//
// Usage: java -cp <hbase classpath>:<classes> ThriftPing host port timeoutSeconds [framed|buffered]
// Exit status 0 when the gateway answered, 1 on timeout.

import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.util.List;

import org.apache.hadoop.hbase.thrift2.generated.TGet;
import org.apache.hadoop.hbase.thrift2.generated.THBaseService;
import org.apache.hadoop.hbase.thrift2.generated.TTableName;
import org.apache.thrift.TConfiguration;
import org.apache.thrift.protocol.TBinaryProtocol;
import org.apache.thrift.transport.TSocket;
import org.apache.thrift.transport.TTransport;
import org.apache.thrift.transport.layered.TFramedTransport;

public final class ThriftPing {
  private ThriftPing() {}

  public static void main(String[] args) throws Exception {
    if (args.length < 3) {
      System.err.println("usage: ThriftPing host port timeoutSeconds [framed|buffered]");
      System.exit(2);
    }
    String host = args[0];
    int port = Integer.parseInt(args[1]);
    long deadline = System.nanoTime() + Long.parseLong(args[2]) * 1_000_000_000L;
    boolean framed = args.length < 4 || !"buffered".equals(args[3]);

    String last = "no attempt";
    while (true) {
      try {
        String ok = ping(host, port, framed);
        System.out.println(ok);
        return;
      } catch (Exception e) {
        last = e.toString();
      }
      if (System.nanoTime() > deadline) {
        System.err.println("thrift2 gateway " + host + ":" + port + " not ready: " + last);
        System.exit(1);
      }
      Thread.sleep(250);
    }
  }

  private static String ping(String host, int port, boolean framed) throws Exception {
    // A short socket timeout on purpose: while the master initialises, the
    // gateway's HBase client retries each call with growing pauses (seconds
    // apart); a fresh call retries from the shortest pause, so abandoning a slow
    // attempt notices a ready master sooner than waiting it out.
    TSocket socket = new TSocket(new TConfiguration(), host, port, 1_500);
    TTransport transport = framed ? new TFramedTransport(socket) : socket;
    transport.open();
    try {
      THBaseService.Client client = new THBaseService.Client(new TBinaryProtocol(transport));
      client.getNamespaceDescriptor("default");
      List<TTableName> tables = client.getTableNamesByPattern(null, true);
      ByteBuffer meta = ByteBuffer.wrap("hbase:meta".getBytes(StandardCharsets.UTF_8));
      TGet get = new TGet(ByteBuffer.wrap("reco-ping".getBytes(StandardCharsets.UTF_8)));
      client.exists(meta, get);
      return "thrift2 gateway " + host + ":" + port + " ready (" + tables.size() + " tables)";
    } finally {
      transport.close();
    }
  }
}
