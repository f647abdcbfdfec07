// LoopbackDynamoDBLocal — starts DynamoDB Local bound to one address (default 127.0.0.1).
//
// Why: DynamoDBLocal.jar has no option to choose the listen address; its Jetty server
// binds every interface, which exposes an unauthenticated database to the network.
// This launcher builds the server exactly as DynamoDBLocal's own main() does (same
// command-line flags), sets the host of its Jetty connector before starting it, and
// otherwise changes nothing. scripts/services.sh compiles it once with javac against
// DynamoDBLocal.jar and runs it instead of `java -jar DynamoDBLocal.jar`.
//
// Address: system property dynamodb.host (e.g. -Ddynamodb.host=0.0.0.0).

import com.amazonaws.services.dynamodbv2.local.main.ServerRunner;
import com.amazonaws.services.dynamodbv2.local.server.DynamoDBProxyServer;
import java.lang.reflect.Field;
import org.eclipse.jetty.server.Connector;
import org.eclipse.jetty.server.Server;
import org.eclipse.jetty.server.ServerConnector;

public final class LoopbackDynamoDBLocal {
    public static void main(String[] args) throws Exception {
        String host = System.getProperty("dynamodb.host", "127.0.0.1");
        DynamoDBProxyServer proxy = ServerRunner.createServerFromCommandLineArgs(args);
        Field field = DynamoDBProxyServer.class.getDeclaredField("server");
        field.setAccessible(true);
        Server jetty = (Server) field.get(proxy);
        int bound = 0;
        for (Connector connector : jetty.getConnectors()) {
            if (connector instanceof ServerConnector) {
                ((ServerConnector) connector).setHost(host);
                bound++;
            }
        }
        if (bound == 0) {
            throw new IllegalStateException("DynamoDB Local has no Jetty ServerConnector to bind to " + host);
        }
        proxy.start();
        System.out.println("DynamoDB Local listening on " + host);
    }
}
