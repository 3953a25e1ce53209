//! The harness of the tests against real peers: libtest-mimic, so that a
//! test whose peer is missing shows as ignored in cargo's summary (outside
//! CI) rather than as passed. Under `CI=true` such tests run, and fail.
//! Shared by the crate's peer tests and the `interop` package (which
//! includes this file by path and exports it to minissh's tests).

/// One test: its name, its body, and whether it needs the peer.
pub type PeerTest = (&'static str, fn(), bool);

/// Runs `tests`; `missing` says why the peer cannot run here, if it cannot.
pub fn run_peer_tests(tests: &[PeerTest], missing: Option<String>) -> std::process::ExitCode {
    let ignore = match &missing {
        Some(why) if std::env::var("CI").as_deref() != Ok("true") => {
            eprintln!("ignored: {why}");
            true
        }
        _ => false,
    };
    let trials = tests
        .iter()
        .map(|&(name, test, needs_peer)| {
            libtest_mimic::Trial::test(name, move || {
                test();
                Ok(())
            })
            .with_ignored_flag(ignore && needs_peer)
        })
        .collect();
    libtest_mimic::run(&libtest_mimic::Arguments::from_args(), trials).exit_code()
}

/// Why python3 cannot import `module` here, if it cannot (the message
/// names the pip package to install).
pub fn python_module_missing(module: &str) -> Option<String> {
    let ok = std::process::Command::new("python3")
        .args(["-c", &format!("import {module}")])
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    (!ok).then(|| format!("python3 with {module} is not installed (pip install {module})"))
}

/// Whether a peer that `missing` describes can run: under `CI=true` its
/// absence is a failure (the runner ignores these tests elsewhere).
pub fn peer_ready(missing: Option<String>) -> bool {
    match missing {
        None => true,
        Some(why) if std::env::var("CI").as_deref() == Ok("true") => {
            panic!("{why} under CI=true: .ci/run must install it")
        }
        Some(_) => false,
    }
}
