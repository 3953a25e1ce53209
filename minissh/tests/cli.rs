//! The `minissh` binary against a private sshd: exec with stdin, stdout,
//! stderr and the exit status; scp of several files; and the messages a
//! user sees on refusal, a wrong host key, a refused key and a peer that
//! closes. Without openssh-server the tests show as ignored, except under
//! CI=true, where a missing peer is a failure.

use std::io::Write;
use std::net::TcpListener;
use std::process::{Command, Output, Stdio};

use interop::harness;
use interop::sshd::{current_user, Sshd};

fn minissh(args: &[&str], stdin: &[u8]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_minissh"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    let data = stdin.to_vec();
    let feeder = std::thread::spawn(move || {
        let _ = input.write_all(&data);
    });
    let out = child.wait_with_output().unwrap();
    feeder.join().unwrap();
    out
}

/// The port and key; host keys are checked against a known_hosts file of
/// the test's own, never the user's.
fn base_args(sshd: &Sshd) -> Vec<String> {
    vec![
        "-p".into(),
        sshd.port().to_string(),
        "-i".into(),
        sshd.client_key().display().to_string(),
        "-o".into(),
        format!(
            "UserKnownHostsFile={}",
            sshd.dir().join("known_hosts").display()
        ),
    ]
}

fn target() -> String {
    format!("{}@127.0.0.1", current_user())
}

fn exec_carries_stdin_stdout_stderr_and_the_exit_status() {
    let Some(sshd) = Sshd::start_or_skip(&[]) else {
        return;
    };
    let mut args = base_args(&sshd);
    args.extend(["-c", "aes256-ctr", "-m", "hmac-sha2-512-etm@openssh.com"].map(String::from));
    args.extend([
        target(),
        "exec".into(),
        "tr a-z A-Z; echo done >&2; exit 4".into(),
    ]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = minissh(&args, b"hello over ssh\n");
    assert_eq!(out.status.code(), Some(4));
    assert_eq!(out.stdout, b"HELLO OVER SSH\n");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("done\n"), "{stderr}");
    // The host key fingerprint is printed, as ssh-keygen -lf shows it.
    let fp = Command::new(interop::sshd::SSH_KEYGEN)
        .arg("-lf")
        .arg(sshd.host_key_pub())
        .output()
        .unwrap();
    let fp = String::from_utf8_lossy(&fp.stdout);
    let fp = fp.split_whitespace().nth(1).unwrap();
    assert!(stderr.contains(fp), "{stderr} lacks {fp}");
    assert!(
        stderr.contains("aes256-ctr hmac-sha2-512-etm@openssh.com"),
        "{stderr}"
    );
}

fn scp_uploads_several_files() {
    let Some(sshd) = Sshd::start_or_skip(&[]) else {
        return;
    };
    let local = sshd.dir().join("local");
    let remote = sshd.dir().join("remote");
    std::fs::create_dir_all(&local).unwrap();
    std::fs::create_dir_all(&remote).unwrap();
    let names = ["a.txt", "b.bin", "c.txt"];
    for (i, name) in names.iter().enumerate() {
        std::fs::write(local.join(name), vec![b'a' + i as u8; 1000 * (i + 1)]).unwrap();
    }
    let mut args = base_args(&sshd);
    args.push("-q".into());
    args.push(target());
    args.push("scp".into());
    args.extend(names.iter().map(|n| local.join(n).display().to_string()));
    args.push(remote.display().to_string());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = minissh(&args, b"");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.stderr.is_empty(), "-q prints nothing on success");
    for name in names {
        assert_eq!(
            std::fs::read(remote.join(name)).unwrap(),
            std::fs::read(local.join(name)).unwrap()
        );
    }
}

fn failure(args: &[String]) -> String {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = minissh(&args, b"");
    assert_eq!(out.status.code(), Some(255), "{out:?}");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn refusals_are_worded_for_the_user() {
    let Some(sshd) = Sshd::start_or_skip(&[]) else {
        return;
    };

    let mut args = base_args(&sshd);
    args.extend([
        "-H".into(),
        "SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA".into(),
    ]);
    args.extend([target(), "exec".into(), "true".into()]);
    let text = failure(&args);
    assert!(
        text.starts_with("minissh: HOST KEY MISMATCH: expected SHA256:AAAA"),
        "{text}"
    );

    let mut args = base_args(&sshd);
    args[3] = sshd.stranger_key().display().to_string();
    args.extend([target(), "exec".into(), "true".into()]);
    let text = failure(&args);
    assert!(text.contains("minissh: authentication failed"), "{text}");

    let mut args = base_args(&sshd);
    args.extend(["-c", "aes128-ctr", "-m", "hmac-sha1"].map(String::from));
    args.extend([target(), "exec".into(), "true".into()]);
    let text = String::from_utf8_lossy(
        &minissh(&args.iter().map(String::as_str).collect::<Vec<_>>(), b"").stderr,
    )
    .into_owned();
    assert!(
        !text.contains("minissh: no common"),
        "sshd 9 still serves hmac-sha1: {text}"
    );

    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut args = base_args(&sshd);
    args[1] = port.to_string();
    args.extend([target(), "exec".into(), "true".into()]);
    let text = failure(&args);
    assert!(
        text.starts_with(&format!("minissh: cannot connect to 127.0.0.1:{port}")),
        "{text}"
    );

    // A server that hangs up at once.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let mut args = base_args(&sshd);
    args[1] = listener.local_addr().unwrap().port().to_string();
    let closer = std::thread::spawn(move || {
        // Read the client's identification first: closing with unread
        // bytes would send a reset instead of a clean end of stream.
        let (conn, _) = listener.accept().unwrap();
        let mut line = String::new();
        std::io::BufRead::read_line(&mut std::io::BufReader::new(&conn), &mut line).unwrap();
        assert!(line.starts_with("SSH-2.0-minissh"), "{line:?}");
    });
    args.extend([target(), "exec".into(), "true".into()]);
    let text = failure(&args);
    closer.join().unwrap();
    assert_eq!(text.trim(), "minissh: the server closed the connection");
}

fn known_hosts_records_then_verifies_then_refuses_a_changed_key() {
    let Some(sshd) = Sshd::start_or_skip(&[]) else {
        return;
    };
    let home = sshd.dir().join("home");
    std::fs::create_dir_all(&home).unwrap();
    let run = |extra: &[String]| {
        let mut args = base_args(&sshd);
        args.truncate(4); // no known_hosts option: the default, under HOME
        args.extend(extra.iter().cloned());
        args.extend([target(), "exec".into(), "echo in".into()]);
        Command::new(env!("CARGO_BIN_EXE_minissh"))
            .args(&args)
            .env("HOME", &home)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    };
    let file = home.join(".ssh/known_hosts");
    let name = format!("[127.0.0.1]:{}", sshd.port());
    // First connection: the key is recorded (the directory made for it).
    let out = run(&[]);
    assert!(out.status.success(), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("recorded the host key of {name}")),
        "{stderr}"
    );
    let host_pub = std::fs::read_to_string(sshd.host_key_pub()).unwrap();
    let host_key: Vec<&str> = host_pub.split_whitespace().take(2).collect();
    let recorded = std::fs::read_to_string(&file).unwrap();
    assert_eq!(recorded, format!("{name} {}\n", host_key.join(" ")));
    // Second: verified, nothing recorded.
    let out = run(&[]);
    assert!(out.status.success(), "{out:?}");
    assert!(!String::from_utf8_lossy(&out.stderr).contains("recorded"));
    // Hashed by ssh-keygen -H: still found.
    let hashed = Command::new(interop::sshd::SSH_KEYGEN)
        .arg("-H")
        .arg("-f")
        .arg(&file)
        .output()
        .unwrap();
    assert!(hashed.status.success(), "{hashed:?}");
    assert!(std::fs::read_to_string(&file).unwrap().starts_with("|1|"));
    let out = run(&["-o".into(), "StrictHostKeyChecking=yes".into()]);
    assert!(out.status.success(), "{out:?}");
    // A changed key: refused with the line to look at.
    let stranger =
        std::fs::read_to_string(format!("{}.pub", sshd.stranger_key().display())).unwrap();
    let stranger: Vec<&str> = stranger.split_whitespace().take(2).collect();
    std::fs::write(&file, format!("# mine\n{name} {}\n", stranger.join(" "))).unwrap();
    let out = run(&[]);
    assert_eq!(out.status.code(), Some(255), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.starts_with(&format!(
            "minissh: HOST KEY FOR {name} HAS CHANGED: {}:2 holds",
            file.display()
        )),
        "{stderr}"
    );
    assert!(out.stdout.is_empty(), "nothing ran");
    // An unknown host when new hosts are refused.
    std::fs::write(&file, "").unwrap();
    let out = run(&["-o".into(), "StrictHostKeyChecking=yes".into()]);
    assert_eq!(out.status.code(), Some(255), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("no known host key for {name}")),
        "{stderr}"
    );
    assert_eq!(
        std::fs::read_to_string(&file).unwrap(),
        "",
        "nothing recorded"
    );
    // And any key at all only when asked.
    let out = run(&["-o".into(), "StrictHostKeyChecking=no".into()]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "");
}

fn usage_errors_exit_2() {
    let out = minissh(&["-c", "rot13", "u@h", "exec", "x"], b"");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).starts_with("minissh: unknown cipher rot13"));
    let out = minissh(&["u@h", "scp", "only-one"], b"");
    assert_eq!(out.status.code(), Some(2));
}

/// The tests (name, body, whether it needs the peer); a missing peer shows
/// them as ignored outside CI.
fn main() -> std::process::ExitCode {
    let tests: &[harness::PeerTest] = &[
        (
            "exec_carries_stdin_stdout_stderr_and_the_exit_status",
            exec_carries_stdin_stdout_stderr_and_the_exit_status,
            true,
        ),
        ("scp_uploads_several_files", scp_uploads_several_files, true),
        (
            "refusals_are_worded_for_the_user",
            refusals_are_worded_for_the_user,
            true,
        ),
        (
            "known_hosts_records_then_verifies_then_refuses_a_changed_key",
            known_hosts_records_then_verifies_then_refuses_a_changed_key,
            true,
        ),
        ("usage_errors_exit_2", usage_errors_exit_2, false),
    ];
    harness::run_peer_tests(tests, interop::sshd::missing())
}
