//! The process default provider: what a new connection takes, installed
//! once. One test in its own binary, as the default is process-wide.

use ssh_packetizer::{Config, Connection, CryptoProvider, Opener, Sealer};

#[test]
fn the_installed_default_is_taken_by_new_connections_and_stays() {
    let build_default = CryptoProvider::get_default();
    assert_eq!(build_default.is_fips(), cfg!(feature = "fips"));
    assert_eq!(Sealer::new().crypto_provider(), build_default);
    // The last provider of the build: another one than RustCrypto when a
    // provider feature is on.
    let chosen = *CryptoProvider::available().last().unwrap();
    chosen.install_default().unwrap();
    assert_eq!(CryptoProvider::get_default(), chosen);
    assert_eq!(Sealer::new().crypto_provider(), chosen);
    assert_eq!(Opener::new().crypto_provider(), chosen);
    assert_eq!(
        Connection::new(Config::client(), std::time::Instant::now()).crypto_provider(),
        chosen
    );
    // Installing it again is no change; another is refused, naming the one
    // that stays.
    chosen.install_default().unwrap();
    if chosen != CryptoProvider::rust_crypto() {
        assert_eq!(CryptoProvider::rust_crypto().install_default(), Err(chosen));
    }
    assert_eq!(CryptoProvider::get_default(), chosen);
    // A connection can still pick another for itself.
    let mut sealer = Sealer::new();
    sealer.set_crypto_provider(CryptoProvider::rust_crypto());
    assert_eq!(sealer.crypto_provider(), CryptoProvider::rust_crypto());
}
