import java.nio.charset.StandardCharsets;
import java.security.MessageDigest;
import java.util.ArrayList;
import java.util.List;
import java.util.zip.CRC32;

/**
 * Burns CPU for a couple of seconds with a few distinct call stacks so that a
 * JFR recording of it contains jdk.ExecutionSample events worth looking at.
 *
 * Usage: java [-XX:StartFlightRecording=...] Busy [seconds]
 */
public final class Busy {
    static volatile long sink;

    public static void main(String[] args) throws Exception {
        double seconds = args.length > 0 ? Double.parseDouble(args[0]) : 2.0;
        long deadline = System.nanoTime() + (long) (seconds * 1e9);
        MessageDigest sha = MessageDigest.getInstance("SHA-256");
        while (System.nanoTime() < deadline) {
            handleRequest(sha);
        }
        System.out.println("done " + sink);
    }

    static void handleRequest(MessageDigest sha) {
        byte[] payload = buildPayload(4096);
        byte[] digest = hashPayload(sha, payload);
        long crc = checksum(payload);
        sink += encode(digest, crc).length();
    }

    static byte[] buildPayload(int n) {
        byte[] b = new byte[n];
        for (int i = 0; i < n; i++) {
            b[i] = (byte) (i * 31 + (i >> 3));
        }
        return b;
    }

    static byte[] hashPayload(MessageDigest sha, byte[] p) {
        byte[] d = null;
        for (int i = 0; i < 16; i++) {
            sha.reset();
            d = sha.digest(p);
            p[0] ^= d[0];
        }
        return d;
    }

    static long checksum(byte[] p) {
        CRC32 crc = new CRC32();
        for (int i = 0; i < 8; i++) {
            crc.update(p);
        }
        return crc.getValue();
    }

    static String encode(byte[] digest, long crc) {
        StringBuilder sb = new StringBuilder();
        for (byte x : digest) {
            sb.append(String.format("%02x", x));
        }
        sb.append('-').append(Long.toHexString(crc));
        List<String> parts = new ArrayList<>();
        for (int i = 0; i < 4; i++) {
            parts.add(sb.toString());
        }
        return String.join(",", parts);
    }
}
