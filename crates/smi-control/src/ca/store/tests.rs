use std::os::unix::fs::{PermissionsExt, symlink};
use std::sync::{Arc, Barrier};

use super::*;

const TD: &str = "cluster.local";

fn set_mode(path: &Path, mode: u32) {
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

/// Writes a file as an operator (or an older version) might have left it: mode 0600.
fn plant(path: &Path, bytes: &[u8]) {
    fs::write(path, bytes).unwrap();
    set_mode(path, 0o600);
}

fn listing(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn the_generated_root_is_a_ca_with_path_length_zero_also_after_rotation() {
    let dir = tempfile::tempdir().unwrap();
    let store = CaStore::new(dir.path());
    let first = store.open_or_init(TD).unwrap().bundle().to_vec();
    store.rotate(TD, Duration::from_secs(3600)).unwrap();
    let rotated = store.load(TD).unwrap().bundle()[0].clone();
    assert_ne!(rotated, first[0]);
    for root in [&first[0], &rotated] {
        let (_, cert) = x509_parser::parse_x509_certificate(root).unwrap();
        let constraints = cert.basic_constraints().unwrap().unwrap().value;
        assert!(constraints.ca);
        assert_eq!(constraints.path_len_constraint, Some(0));
    }
}

#[test]
fn the_state_directory_is_created_private_and_no_temporary_file_is_left() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("new").join("state");
    let store = CaStore::new(&state);
    store.open_or_init(TD).unwrap();
    store.token_key().unwrap();
    store.rotate(TD, Duration::from_secs(60)).unwrap();
    let mode = fs::metadata(&state).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o700);
    assert_eq!(listing(&state), ["bundle.pem", "ca.json", "token.key"]);
}

#[test]
fn a_corrupt_token_key_is_an_error_naming_the_file_and_is_left_untouched() {
    use base64::Engine;
    let short = base64::engine::general_purpose::STANDARD.encode([7u8; 16]);
    let cases: [(&[u8], &str); 4] = [
        (b"not base64!", "not base64"),
        (short.as_bytes(), "a 16 byte key, expected 32"),
        (b"\xff\xfe\x00", "not UTF-8"),
        (b"", "a 0 byte key"),
    ];
    for (content, why) in cases {
        let dir = tempfile::tempdir().unwrap();
        let store = CaStore::new(dir.path());
        plant(&store.token_file(), content);
        let err = store.token_key().unwrap_err().to_string();
        assert!(err.contains("token.key") && err.contains(why), "{err}");
        assert_eq!(fs::read(store.token_file()).unwrap(), content);
    }
}

#[test]
fn a_corrupt_ca_file_is_an_error_naming_the_file_and_is_left_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let store = CaStore::new(dir.path());
    plant(&store.ca_file(), b"{\"roots\": [");
    let err = store.open_or_init(TD).unwrap_err().to_string();
    assert!(err.contains("ca.json"), "{err}");
    assert_eq!(fs::read(store.ca_file()).unwrap(), b"{\"roots\": [");
    assert!(!store.bundle_file().exists());
}

#[test]
fn a_secret_readable_by_group_or_others_is_refused_with_the_fix() {
    let dir = tempfile::tempdir().unwrap();
    let store = CaStore::new(dir.path());
    let key = store.token_key().unwrap();
    store.open_or_init(TD).unwrap();
    for (path, mode) in [(store.token_file(), 0o640), (store.ca_file(), 0o604)] {
        set_mode(&path, mode);
        let err = match path.file_name().and_then(|n| n.to_str()) {
            Some("token.key") => store.token_key().map(drop).unwrap_err(),
            _ => store.open_or_init(TD).map(drop).unwrap_err(),
        }
        .to_string();
        assert!(
            err.contains(&format!("mode {mode:04o}")) && err.contains("chmod 600"),
            "{err}"
        );
        set_mode(&path, 0o600);
    }
    // Fixed as the message says, both are read again as they were.
    assert_eq!(store.token_key().unwrap(), key);
    store.open_or_init(TD).unwrap();
}

#[test]
fn a_symlink_planted_at_a_secret_path_is_refused_and_not_followed() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    fs::create_dir(&state).unwrap();
    let store = CaStore::new(&state);
    // A link to a readable key elsewhere: not taken as the token key.
    let elsewhere = dir.path().join("attacker.key");
    plant(&elsewhere, b"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=");
    symlink(&elsewhere, store.token_file()).unwrap();
    let err = store.token_key().unwrap_err().to_string();
    assert!(
        err.contains("token.key") && err.contains("symbolic link"),
        "{err}"
    );
    // A dangling link: nothing is created through it, and the link is not replaced.
    let target = dir.path().join("written-through.json");
    symlink(&target, store.ca_file()).unwrap();
    let err = store.open_or_init(TD).unwrap_err().to_string();
    assert!(
        err.contains("ca.json") && err.contains("symbolic link"),
        "{err}"
    );
    assert!(!target.exists());
    assert!(fs::symlink_metadata(store.ca_file()).unwrap().is_symlink());
    assert_eq!(
        fs::read(&elsewhere).unwrap(),
        b"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="
    );
}

#[test]
fn new_files_are_created_exclusively_and_not_written_through_an_existing_entry() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("target");
    plant(&target, b"original");
    let path = dir.path().join("secret");
    symlink(&target, &path).unwrap();
    assert!(!write_new(&path, b"new", 0o600).unwrap());
    assert_eq!(fs::read(&target).unwrap(), b"original");
    // The temporary file was removed; only the link and its target remain.
    assert_eq!(listing(dir.path()), ["secret", "target"]);
}

#[test]
fn processes_creating_the_token_key_at_once_agree_on_one_key() {
    let dir = tempfile::tempdir().unwrap();
    let n = 8;
    let start = Arc::new(Barrier::new(n));
    let threads: Vec<_> = (0..n)
        .map(|_| {
            let (store, start) = (CaStore::new(dir.path()), start.clone());
            std::thread::spawn(move || {
                start.wait();
                store.token_key().unwrap()
            })
        })
        .collect();
    let keys: Vec<Vec<u8>> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    assert!(keys.iter().all(|k| *k == keys[0]), "{keys:?}");
    assert_eq!(CaStore::new(dir.path()).token_key().unwrap(), keys[0]);
}
