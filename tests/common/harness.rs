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
