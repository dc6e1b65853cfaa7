package org.hawiya.dss;

import eu.europa.esig.dss.enumerations.SubIndication;
import eu.europa.esig.dss.jaxb.object.Message;
import eu.europa.esig.dss.model.DSSDocument;
import eu.europa.esig.dss.model.FileDocument;
import eu.europa.esig.dss.model.x509.CertificateToken;
import eu.europa.esig.dss.simplereport.SimpleReport;
import eu.europa.esig.dss.simplereport.jaxb.XmlMessage;
import eu.europa.esig.dss.simplereport.jaxb.XmlTimestamp;
import eu.europa.esig.dss.spi.DSSUtils;
import eu.europa.esig.dss.spi.validation.CommonCertificateVerifier;
import eu.europa.esig.dss.spi.x509.CommonTrustedCertificateSource;
import eu.europa.esig.dss.validation.SignedDocumentValidator;
import eu.europa.esig.dss.validation.reports.Reports;

import java.io.FileInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.atomic.AtomicLong;

/**
 * The EU's reference AdES validator (DSS) as an oracle for Hawiya's end-to-end tests.
 *
 * <pre>java -jar hawiya-dss.jar --trust root.pem [--detached-content file] [--reports dir] [--bench seconds threads] signed-file</pre>
 *
 * <p>Prints one line per signature on stdout, {@code <indication> <sub-indication or -> <format>}
 * (e.g. {@code TOTAL_PASSED - PAdES-BASELINE-LT}); a file with no signature but timestamps (a
 * detached RFC 3161 token) gets one line per timestamp, {@code PASSED - TIMESTAMP}; a file with
 * neither gets no line. Exits 0 whatever DSS concluded: the
 * caller asserts on the text. Why a signature did not pass (DSS's errors and warnings, and
 * its timestamps' conclusions) goes to stderr; {@code --reports dir} also writes DSS's
 * simple, detailed and diagnostic XML reports there. Exits 2 on bad arguments.
 *
 * <p>What it must never do: fetch anything. The trust anchor is the one certificate given
 * with {@code --trust} (no trusted list); there is no AIA, OCSP or CRL source, so only the
 * certificates and revocation data embedded in the signed file count, as they must for a
 * B-LT signature. The validation policy is DSS's default, unchanged.
 *
 * <p>{@code --bench seconds threads} (the benchmark, {@code scripts/bench-validation}): after
 * the verdict, validates the same file again for that long on that many threads in this JVM,
 * warm, and prints {@code RATE <validations per second> <count>}.
 */
public final class HawiyaDssCheck {
    private HawiyaDssCheck() {}

    public static void main(String[] args) throws IOException, InterruptedException {
        String trust = null;
        String detached = null;
        String reportsDir = null;
        String signed = null;
        double benchSeconds = 0;
        int benchThreads = 0;
        for (int i = 0; i < args.length; i++) {
            switch (args[i]) {
                case "--trust" -> trust = value(args, ++i);
                case "--bench" -> {
                    try {
                        benchSeconds = Double.parseDouble(value(args, ++i));
                        benchThreads = Integer.parseInt(value(args, ++i));
                    } catch (NumberFormatException e) {
                        usage("--bench takes seconds and a number of threads");
                    }
                }
                case "--detached-content" -> detached = value(args, ++i);
                case "--reports" -> reportsDir = value(args, ++i);
                default -> {
                    if (signed != null || args[i].startsWith("--")) {
                        usage("unexpected argument " + args[i]);
                    }
                    signed = args[i];
                }
            }
        }
        if (trust == null || signed == null) {
            usage("--trust and the signed file are required");
        }

        CertificateToken root;
        try (InputStream in = new FileInputStream(trust)) {
            root = DSSUtils.loadCertificate(in);
            System.err.println("trust anchor: " + root.getSubject().getRFC2253());
        }
        Reports reports = validate(root, signed, detached);

        if (reportsDir != null) {
            Path dir = Path.of(reportsDir);
            Files.createDirectories(dir);
            Files.writeString(dir.resolve("simple-report.xml"), reports.getXmlSimpleReport(), StandardCharsets.UTF_8);
            Files.writeString(dir.resolve("detailed-report.xml"), reports.getXmlDetailedReport(), StandardCharsets.UTF_8);
            Files.writeString(dir.resolve("diagnostic-data.xml"), reports.getXmlDiagnosticData(), StandardCharsets.UTF_8);
        }

        SimpleReport simple = reports.getSimpleReport();
        List<String> ids = simple.getSignatureIdList();
        if (ids.isEmpty()) {
            // A detached RFC 3161 token (validated against --detached-content) has timestamps
            // and no signature: one line per timestamp, its format given as TIMESTAMP.
            List<String> timestamps = simple.getTimestampIdList();
            if (timestamps.isEmpty()) {
                System.err.println("DSS found no signature and no timestamp in " + signed);
            }
            for (String id : timestamps) {
                SubIndication sub = simple.getSubIndication(id);
                String conclusion = simple.getIndication(id) + " " + (sub == null ? "-" : sub);
                System.out.println(conclusion + " TIMESTAMP");
                System.err.println("timestamp " + id + ": " + conclusion);
                messages("error", simple.getAdESValidationErrors(id));
                messages("warning", simple.getAdESValidationWarnings(id));
            }
        }
        for (String id : ids) {
            SubIndication sub = simple.getSubIndication(id);
            String conclusion = simple.getIndication(id) + " " + (sub == null ? "-" : sub);
            System.out.println(conclusion + " " + simple.getSignatureFormat(id));
            System.err.println("signature " + id + ": " + conclusion);
            messages("error", simple.getAdESValidationErrors(id));
            messages("warning", simple.getAdESValidationWarnings(id));
            for (XmlTimestamp ts : simple.getSignatureTimestamps(id)) {
                System.err.println("  timestamp " + ts.getId() + " (" + (ts.getTimestampLevel() == null ? "-" : ts.getTimestampLevel().getValue()) + "): " + ts.getIndication() + " "
                        + (ts.getSubIndication() == null ? "-" : ts.getSubIndication()));
                if (ts.getAdESValidationDetails() != null) {
                    xmlMessages("  error", ts.getAdESValidationDetails().getError());
                    xmlMessages("  warning", ts.getAdESValidationDetails().getWarning());
                }
            }
        }
        if (benchThreads > 0) {
            bench(root, signed, detached, benchSeconds, benchThreads);
        }
    }

    /** One validation of {@code signed}, offline, with {@code root} the only trust anchor. */
    private static Reports validate(CertificateToken root, String signed, String detached) {
        CommonTrustedCertificateSource anchors = new CommonTrustedCertificateSource();
        anchors.addCertificate(root);
        CommonCertificateVerifier verifier = new CommonCertificateVerifier();
        verifier.setTrustedCertSources(anchors);
        // Offline on purpose: only what the signed file embeds counts.
        verifier.setAIASource(null);
        verifier.setOcspSource(null);
        verifier.setCrlSource(null);
        SignedDocumentValidator validator = SignedDocumentValidator.fromDocument(new FileDocument(signed));
        validator.setCertificateVerifier(verifier);
        if (detached != null) {
            validator.setDetachedContents(List.<DSSDocument>of(new FileDocument(detached)));
        }
        return validator.validateDocument();
    }

    /** Validates {@code signed} again and again on {@code threads} threads for {@code seconds}. */
    private static void bench(CertificateToken root, String signed, String detached, double seconds, int threads) throws InterruptedException {
        AtomicLong count = new AtomicLong();
        long deadline = System.nanoTime() + (long) (seconds * 1e9);
        long start = System.nanoTime();
        List<Thread> workers = new ArrayList<>();
        for (int t = 0; t < threads; t++) {
            Thread w = new Thread(() -> {
                while (System.nanoTime() < deadline) {
                    validate(root, signed, detached);
                    count.incrementAndGet();
                }
            });
            w.start();
            workers.add(w);
        }
        for (Thread w : workers) {
            w.join();
        }
        double elapsed = (System.nanoTime() - start) / 1e9;
        System.out.printf("RATE %.1f %d%n", count.get() / elapsed, count.get());
    }

    private static void messages(String kind, List<Message> messages) {
        for (Message m : messages) {
            System.err.println("  " + kind + " [" + m.getKey() + "] " + m.getValue());
        }
    }

    private static void xmlMessages(String kind, List<XmlMessage> messages) {
        for (XmlMessage m : messages) {
            System.err.println("  " + kind + " [" + m.getKey() + "] " + m.getValue());
        }
    }

    private static String value(String[] args, int i) {
        if (i >= args.length) {
            usage(args[i - 1] + " needs a value");
        }
        return args[i];
    }

    private static void usage(String why) {
        System.err.println("hawiya-dss: " + why);
        System.err.println("usage: java -jar hawiya-dss.jar --trust root.pem [--detached-content file] [--reports dir] [--bench seconds threads] signed-file");
        System.exit(2);
    }
}
