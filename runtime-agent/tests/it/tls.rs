//! `https://` for real (issue 15 §13): a throwaway CA made by `openssl`, a
//! local HTTPS server (Python's `ssl`) that requires a client certificate,
//! serves the bundle and index and takes the POSTed reports. The agent
//! fetches and reports with the CA given, and refuses the server without
//! it (the system's roots do not know this CA) or without its client
//! certificate.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};

use crate::fixture::Spec;
use crate::support::{Keys, Killed, Netns, source_dir};

const SERVER: &str = r#"
import http.server, ssl, sys, os
d, port, cert, key, ca = sys.argv[1:6]
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        p = os.path.join(d, self.path.lstrip("/"))
        if not os.path.isfile(p):
            self.send_response(404); self.end_headers(); return
        b = open(p, "rb").read()
        self.send_response(200); self.send_header("Content-Length", str(len(b))); self.end_headers()
        self.wfile.write(b)
    def do_POST(self):
        n = int(self.headers.get("Content-Length", 0))
        open(os.path.join(d, "posted.json"), "wb").write(self.rfile.read(n))
        self.send_response(204); self.end_headers()
    def log_message(self, *a): pass
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(cert, key)
ctx.load_verify_locations(ca)
ctx.verify_mode = ssl.CERT_REQUIRED
s = http.server.HTTPServer(("127.0.0.1", int(port)), H)
s.socket = ctx.wrap_socket(s.socket, server_side=True)
print("ready", flush=True)
s.serve_forever()
"#;

fn openssl(dir: &Path, args: &str) {
    ringfence_testkit::cmd::run(
        Command::new("sh")
            .arg("-c")
            .arg(format!("openssl {args}"))
            .current_dir(dir),
    );
}

/// A CA, a server certificate for 127.0.0.1 and a client certificate.
fn pki(dir: &Path) {
    openssl(
        dir,
        "req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ca.key -out ca.crt -days 2 -subj /CN=ringfence-test-ca",
    );
    for (name, ext) in [
        (
            "server",
            "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth",
        ),
        ("client", "extendedKeyUsage=clientAuth"),
    ] {
        std::fs::write(dir.join(format!("{name}.ext")), ext).unwrap();
        openssl(
            dir,
            &format!(
                "req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout {name}.key -out {name}.csr -subj /CN={name}"
            ),
        );
        openssl(
            dir,
            &format!(
                "x509 -req -in {name}.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out {name}.crt -days 2 -extfile {name}.ext"
            ),
        );
    }
}

#[test]
fn https_sources_and_collectors_with_a_given_ca_and_client_certificate() {
    let ns = Netns::new("tls");
    let keys = Keys::new();
    let pki_dir = keys.path("pki");
    std::fs::create_dir_all(&pki_dir).unwrap();
    pki(&pki_dir);
    let spec = Spec::small(1, &[8081]);
    let www = source_dir(&keys, "www", &spec);
    let port = 21000 + std::process::id() % 900;
    let mut server = Killed(
        Command::new("python3")
            .arg("-c")
            .arg(SERVER)
            .arg(&www)
            .arg(port.to_string())
            .arg(pki_dir.join("server.crt"))
            .arg(pki_dir.join("server.key"))
            .arg(pki_dir.join("ca.crt"))
            .stdout(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let mut ready = String::new();
    BufReader::new(server.0.stdout.as_mut().unwrap())
        .read_line(&mut ready)
        .unwrap();
    assert_eq!(ready.trim(), "ready");
    let base = format!("https://127.0.0.1:{port}");
    let run = |state: &str, extra: &[&str]| {
        let out = keys
            .cli(
                &["run", "--once", "--node", "n1", "--netns", &ns.name],
                &keys.path(state),
            )
            .args(["--source", &base, "--report-to", &format!("{base}/reports")])
            .args(extra)
            .output()
            .unwrap();
        let report =
            std::fs::read_to_string(keys.path(state).join("report.json")).unwrap_or_default();
        (
            out.status.code(),
            report,
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let ca = pki_dir.join("ca.crt");
    let (cert, key) = (pki_dir.join("client.crt"), pki_dir.join("client.key"));
    let p = |x: &Path| x.to_str().unwrap().to_string();
    // Without the CA: the system's roots refuse the server; nothing applied.
    let (code, report, _) = run("a", &["--client-cert", &p(&cert), "--client-key", &p(&key)]);
    assert_eq!(code, Some(1));
    assert!(
        report.contains("no-bundle") && report.to_lowercase().contains("certificate"),
        "{report}"
    );
    assert_eq!(ns.ours(), "");
    // Without the client certificate the server hangs up.
    let (code, report, _) = run("b", &["--ca-bundle", &p(&ca)]);
    assert_eq!(code, Some(1));
    assert!(report.contains("no-bundle"), "{report}");
    // With both: applied, and the report POSTed over TLS.
    let (code, report, log) = run(
        "c",
        &[
            "--ca-bundle",
            &p(&ca),
            "--client-cert",
            &p(&cert),
            "--client-key",
            &p(&key),
        ],
    );
    assert_eq!(code, Some(0), "{report}\n{log}");
    assert!(ns.ours().contains("p0-web-8081"));
    let posted = std::fs::read_to_string(www.join("posted.json")).unwrap();
    assert!(posted.contains("\"status\":\"in-sync\""), "{posted}");
}
