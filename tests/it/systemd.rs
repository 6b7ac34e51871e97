//! systemd integration: the shipped unit passes `systemd-analyze verify`, and
//! the daemon speaks the sd_notify protocol (READY, RELOADING, STOPPING,
//! WATCHDOG) to a real notify socket.

use std::os::unix::net::UnixDatagram;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn unit_text() -> String {
    std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/systemd/augur.service"
    ))
    .unwrap()
}

#[test]
fn unit_has_the_settings_the_daemon_relies_on() {
    let unit = unit_text();
    for line in [
        "Type=notify",
        "ExecStartPre=/usr/local/bin/augur check config /etc/augur/augur.toml",
        "ExecReload=/usr/local/bin/augur check config /etc/augur/augur.toml",
        "ExecReload=/bin/kill -HUP $MAINPID",
        "StateDirectory=augur",
        "DynamicUser=yes",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "ProtectHome=yes",
        "PrivateTmp=yes",
        "RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6",
    ] {
        assert!(unit.lines().any(|l| l == line), "unit lacks {line}");
    }
    assert!(unit.lines().any(|l| l.starts_with("WatchdogSec=")));
}

#[test]
fn unit_passes_systemd_analyze_verify() {
    if Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_err()
    {
        crate::common::skip_or_fail(
            "systemd-analyze not found; install the Debian package `systemd`",
        );
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    // verify checks that ExecStart binaries exist: point it at the test build.
    let unit = unit_text().replace("/usr/local/bin/augur", crate::common::bin());
    let path = dir.path().join("augur.service");
    std::fs::write(&path, unit).unwrap();
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&path)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "verify failed: {stderr}");
    // verify exits 0 on ignored settings but reports them on stderr.
    let problems: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("augur.service"))
        .collect();
    assert!(problems.is_empty(), "verify complained: {stderr}");
}

fn recv_until(sock: &UnixDatagram, want: &str, secs: u64, seen: &mut Vec<String>) -> bool {
    let deadline = Instant::now() + Duration::from_secs(secs);
    let mut buf = [0u8; 4096];
    while Instant::now() < deadline {
        if let Ok(n) = sock.recv(&mut buf) {
            let msg = String::from_utf8_lossy(&buf[..n]).to_string();
            let hit = msg.lines().any(|l| l == want);
            seen.push(msg);
            if hit {
                return true;
            }
        }
    }
    false
}

#[test]
fn daemon_speaks_sd_notify() {
    let dir = tempfile::tempdir().unwrap();
    let sock_path = dir.path().join("notify.sock");
    let sock = UnixDatagram::bind(&sock_path).unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let cfg = dir.path().join("augur.toml");
    std::fs::write(&cfg, "[storage]\nretention = \"10m\"\n").unwrap();
    let mut child = Command::new(crate::common::bin())
        .args(["run", "--listen", "127.0.0.1:0", "--config"])
        .arg(&cfg)
        .arg("--state-dir")
        .arg(dir.path().join("state"))
        .env("NOTIFY_SOCKET", &sock_path)
        .env("WATCHDOG_USEC", "400000")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    let mut seen = Vec::new();
    assert!(recv_until(&sock, "READY=1", 20, &mut seen), "{seen:?}");
    assert!(recv_until(&sock, "WATCHDOG=1", 5, &mut seen), "{seen:?}");
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGHUP).unwrap();
    assert!(recv_until(&sock, "RELOADING=1", 5, &mut seen), "{seen:?}");
    assert!(recv_until(&sock, "READY=1", 5, &mut seen), "{seen:?}");
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
    assert!(recv_until(&sock, "STOPPING=1", 10, &mut seen), "{seen:?}");
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0));
}
