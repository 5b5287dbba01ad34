use std::os::unix::fs::{symlink, PermissionsExt};

use super::*;

/// A fresh directory under the system temp dir, removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Scratch {
        let p =
            std::env::temp_dir().join(format!("ferrofab-state-unit-{}-{name}", std::process::id()));
        let _ = fs::remove_dir_all(&p);
        fs::create_dir_all(&p).unwrap();
        Scratch(p)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn two_subsystems() -> Config {
    let text = "[[listener]]\ntransport = \"tcp\"\naddress = \"127.0.0.1:4420\"\n\
        [[subsystem]]\nnqn = \"nqn.2026-01.io.ferrofab:a\"\n\
        allowed_hosts = [\"nqn.2026-01.io.host:h1\"]\n\
        [[subsystem.namespace]]\nbackend = \"null\"\nsize = \"1MiB\"\n\
        [[subsystem]]\nnqn = \"nqn.2026-01.io.ferrofab:b\"\n\
        [[subsystem.namespace]]\nbackend = \"file\"\npath = \"/srv/b.img\"\n";
    Config::parse(text, "t").unwrap()
}

#[test]
fn missing_file_loads_none_and_saves_load_back_equal() {
    let s = Scratch::new("save");
    let state = StateDir::open(&s.0).unwrap();
    assert_eq!(state.load().unwrap(), None);
    let first = Config::default_config().unwrap();
    state.save(&first).unwrap();
    assert_eq!(state.load().unwrap(), Some(first.clone()));
    let second = two_subsystems();
    assert_ne!(first, second);
    state.save(&second).unwrap();
    assert_eq!(state.load().unwrap(), Some(second.clone()));
    // Nothing left but the state file, private to the daemon's user.
    let names: Vec<_> = fs::read_dir(&s.0)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, vec![STATE_FILE]);
    let mode = fs::metadata(state.file()).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    // Another process (here: a later start) reads the same state.
    drop(state);
    assert_eq!(StateDir::open(&s.0).unwrap().load().unwrap(), Some(second));
}

#[test]
fn corrupt_files_are_refused_and_kept() {
    let s = Scratch::new("corrupt");
    let file = s.0.join(STATE_FILE);
    let cases: [(&[u8], &str); 4] = [
        (
            b"[[listener]\ntransport = \"tcp\"\n",
            "unclosed array table",
        ),
        (
            b"[[listener]]\ntransport = \"tcp\"\naddress = \"127.0.",
            "address",
        ),
        (b"", "no [[listener]]"),
        (b"\xff\xfe[[listener]]", "not UTF-8"),
    ];
    for (bytes, why) in cases {
        fs::write(&file, bytes).unwrap();
        let state = StateDir::open(&s.0).unwrap();
        let e = state.load().unwrap_err();
        let text = e.to_string();
        assert!(
            matches!(&e, StateError::Corrupt { path, .. } if *path == file),
            "{text}"
        );
        assert!(text.contains(&file.display().to_string()), "{text}");
        assert!(text.contains(why), "{why:?} missing in: {text}");
        assert!(text.contains("never overwrites"), "{text}");
        assert_eq!(fs::read(&file).unwrap(), bytes, "the corrupt file changed");
        // Loading again gives the same answer: nothing was repaired behind the caller's back.
        assert!(matches!(state.load(), Err(StateError::Corrupt { .. })));
        assert_eq!(fs::read(&file).unwrap(), bytes);
    }
}

#[test]
fn open_removes_a_stale_temp_file_but_not_the_state() {
    let s = Scratch::new("stale");
    let state = StateDir::open(&s.0).unwrap();
    let config = two_subsystems();
    state.save(&config).unwrap();
    drop(state);
    // A save killed between creating the temp file and renaming it.
    let temp = s.0.join(TEMP_FILE);
    fs::write(&temp, b"[[listener]]\ntransport = \"tc").unwrap();
    let state = StateDir::open(&s.0).unwrap();
    assert!(!temp.exists(), "stale temp file survived open");
    assert_eq!(state.load().unwrap(), Some(config));
}

#[test]
fn a_symlink_at_the_temp_name_is_not_followed() {
    let s = Scratch::new("symlink");
    let dir = s.0.join("state");
    fs::create_dir(&dir).unwrap();
    let victim = s.0.join("victim");
    fs::write(&victim, b"precious").unwrap();
    symlink(&victim, dir.join(TEMP_FILE)).unwrap();
    let state = StateDir::open(&dir).unwrap();
    // Planted after open too: save must replace the link, not write through it.
    symlink(&victim, dir.join(TEMP_FILE)).unwrap();
    state.save(&two_subsystems()).unwrap();
    assert_eq!(fs::read(&victim).unwrap(), b"precious");
    assert_eq!(state.load().unwrap(), Some(two_subsystems()));
}

#[test]
fn a_missing_directory_is_created_private() {
    let s = Scratch::new("create");
    let dir = s.0.join("var/lib/ferrofab");
    let state = StateDir::open(&dir).unwrap();
    assert_eq!(state.path(), dir);
    let meta = fs::metadata(&dir).unwrap();
    assert!(meta.is_dir());
    assert_eq!(meta.permissions().mode() & 0o777, 0o700);
    assert_eq!(state.load().unwrap(), None);
}

#[test]
fn a_file_is_not_a_state_directory() {
    let s = Scratch::new("file");
    let file = s.0.join("not-a-dir");
    fs::write(&file, b"keep me").unwrap();
    let e = StateDir::open(&file).unwrap_err();
    assert!(matches!(e, StateError::NotADirectory { .. }), "{e}");
    assert!(e.to_string().contains("not-a-dir"), "{e}");
    assert_eq!(fs::read(&file).unwrap(), b"keep me");
}

#[test]
fn one_owner_at_a_time() {
    let s = Scratch::new("lock");
    let first = StateDir::open(&s.0).unwrap();
    let e = StateDir::open(&s.0).unwrap_err();
    assert!(matches!(e, StateError::Locked { .. }), "{e}");
    assert!(e.to_string().contains("in use"), "{e}");
    drop(first);
    StateDir::open(&s.0).unwrap();
}

#[test]
fn configurations_that_would_not_load_back_are_not_saved() {
    let s = Scratch::new("unsaveable");
    let state = StateDir::open(&s.0).unwrap();
    let good = two_subsystems();
    state.save(&good).unwrap();
    let before = fs::read(state.file()).unwrap();
    let mut no_listener = good.clone();
    no_listener.listener.clear();
    let mut unassigned = good.clone();
    unassigned.subsystem[0].namespace[0].nsid = None;
    for (bad, why) in [(no_listener, "no [[listener]]"), (unassigned, "nsid")] {
        let e = state.save(&bad).unwrap_err();
        assert!(matches!(e, StateError::Unsaveable { .. }), "{e}");
        assert!(e.to_string().contains(why), "{why:?} missing in: {e}");
        assert_eq!(fs::read(state.file()).unwrap(), before);
        assert!(!s.0.join(TEMP_FILE).exists());
    }
    assert_eq!(state.load().unwrap(), Some(good));
}
