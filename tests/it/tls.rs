//! `tls_config` on scrape jobs against a real TLS server (`openssl
//! s_server -WWW`, serving a metrics file) with a test CA: a trusted CA and
//! a client certificate scrape; a missing client certificate, an unknown CA
//! and a bad CA file fail the scrape with the reason. Skips, saying what to
//! install, without `openssl`.

use std::path::Path;
use std::process::{Child, Command, Stdio};

use serde_json::Value;

use crate::common::{eventually, skip_or_fail, Daemon};

struct Server(Child);
impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run openssl");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A CA, a server certificate for 127.0.0.1 and a client certificate.
fn certificates(dir: &Path) {
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "2",
            "-subj",
            "/CN=augur test CA",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ],
    );
    for (name, eku, san) in [
        ("srv", "serverAuth", "subjectAltName=IP:127.0.0.1\n"),
        ("cli", "clientAuth", ""),
    ] {
        std::fs::write(
            dir.join(format!("{name}.ext")),
            format!("basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage={eku}\n{san}"),
        )
        .unwrap();
        openssl(
            dir,
            &[
                "req",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-keyout",
                &format!("{name}.key"),
                "-out",
                &format!("{name}.csr"),
                "-subj",
                &format!("/CN={name}"),
            ],
        );
        openssl(
            dir,
            &[
                "x509",
                "-req",
                "-in",
                &format!("{name}.csr"),
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-out",
                &format!("{name}.pem"),
                "-days",
                "2",
                "-extfile",
                &format!("{name}.ext"),
            ],
        );
    }
}

fn health(t: &Value, job: &str) -> Option<(String, String)> {
    let a = t["data"]["activeTargets"].as_array()?;
    let x = a.iter().find(|x| x["scrapePool"] == job)?;
    Some((
        x["health"].as_str()?.to_string(),
        x["lastError"].as_str()?.to_string(),
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scrapes_over_tls_with_a_ca_and_client_certificate() {
    if Command::new("openssl").arg("version").output().is_err() {
        skip_or_fail("openssl not found on PATH; install the Debian package `openssl`");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path();
    certificates(p);
    let www = p.join("www");
    std::fs::create_dir(&www).unwrap();
    std::fs::write(www.join("metrics"), "tls_test_metric 42\n").unwrap();
    let port = crate::common::free_port();
    let _srv = Server(
        Command::new("openssl")
            .args([
                "s_server",
                "-quiet",
                "-WWW",
                "-accept",
                &format!("127.0.0.1:{port}"),
            ])
            .args([
                "-cert",
                "../srv.pem",
                "-key",
                "../srv.key",
                "-Verify",
                "1",
                "-CAfile",
                "../ca.pem",
            ])
            .current_dir(&www)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start openssl s_server"),
    );
    eventually(10, "TLS server listening", || async {
        tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .ok()
            .map(|_| ())
    })
    .await;
    let ca = p.join("ca.pem").display().to_string();
    let (cert, key) = (
        p.join("cli.pem").display().to_string(),
        p.join("cli.key").display().to_string(),
    );
    let job = |name: &str, tls: &str| {
        format!("[[scrape_configs]]\njob_name = \"{name}\"\nscheme = \"https\"\n{tls}\nstatic_configs = [{{ targets = [\"127.0.0.1:{port}\"] }}]\n")
    };
    let cfg = [
        "[global]\nscrape_interval = \"1s\"\nscrape_timeout = \"1s\"\n".to_string(),
        job("trusted", &format!("tls_config = {{ ca_file = \"{ca}\", cert_file = \"{cert}\", key_file = \"{key}\" }}")),
        job("no-client-cert", &format!("tls_config = {{ ca_file = \"{ca}\" }}")),
        job("unknown-ca", &format!("tls_config = {{ cert_file = \"{cert}\", key_file = \"{key}\" }}")),
        job("insecure", &format!("tls_config = {{ insecure_skip_verify = true, cert_file = \"{cert}\", key_file = \"{key}\" }}")),
    ]
    .concat();
    let mut d = Daemon::start(p, &cfg);
    let t = eventually(20, "every TLS job scraped once", || async {
        let t = d.get_json("/api/v1/targets").await;
        ["trusted", "no-client-cert", "unknown-ca", "insecure"]
            .iter()
            .all(|j| health(&t, j).is_some_and(|(h, _)| h != "unknown"))
            .then_some(t)
    })
    .await;
    // s_server answers one connection at a time: give failures a retry.
    let t = if health(&t, "trusted").unwrap().0 == "up" && health(&t, "insecure").unwrap().0 == "up"
    {
        t
    } else {
        eventually(20, "trusted and insecure jobs up", || async {
            let t = d.get_json("/api/v1/targets").await;
            (health(&t, "trusted")?.0 == "up" && health(&t, "insecure")?.0 == "up").then_some(t)
        })
        .await
    };
    let (h, e) = health(&t, "unknown-ca").unwrap();
    assert_eq!(h, "down");
    assert!(e.to_lowercase().contains("certificate"), "{e}");
    let (h, _) = health(&t, "no-client-cert").unwrap();
    assert_eq!(h, "down", "the server requires a client certificate");
    let s = d.export("tls_test_metric{job=\"trusted\"}").await;
    assert_eq!(s.len(), 1);

    // check config: server_name is refused, cert without key too.
    let bad = p.join("bad.toml");
    std::fs::write(
        &bad,
        "[[scrape_configs]]\njob_name = \"j\"\ntls_config = { server_name = \"x\", cert_file = \"c.pem\" }\n",
    )
    .unwrap();
    let out = Command::new(crate::common::bin())
        .args(["check", "config"])
        .arg(&bad)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("bad.toml:3:14: job \"j\": tls_config.server_name is not supported"),
        "{err}"
    );
    assert!(
        err.contains("tls_config needs both cert_file and key_file"),
        "{err}"
    );
    assert_eq!(d.stop(), 0);
}
