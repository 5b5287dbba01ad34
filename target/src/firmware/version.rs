//! Image versions (`0.1.0.2`: digits and dots) and the names the image's artifacts carry:
//! `ferrofab_<version>.efi` (the UKI), `ferrofab_<version>.root.raw` (the root partition
//! image), and on the ESP the UKI with systemd-boot's boot counter
//! (`ferrofab_<version>+<left>[-<done>].efi`).

use std::cmp::Ordering;
use std::fmt;

/// The prefix of every artifact name, partition label and boot entry of the image.
pub const PREFIX: &str = "ferrofab_";
/// The suffix of a UKI.
pub const UKI_SUFFIX: &str = ".efi";
/// The suffix of a root partition image.
pub const ROOT_SUFFIX: &str = ".root.raw";
/// The longest version taken (systemd-sysupdate puts it in partition labels of 36 UTF-16
/// characters, `ferrofab_` included).
pub const MAX_VERSION_LEN: usize = 27;

/// An image version: dot-separated runs of digits, ordered as systemd-sysupdate orders them
/// (each run as a number, leading zeros ignored; a longer version after its own prefix).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Version(String);

impl Version {
    /// `text` as a version, or why it is not one.
    pub fn parse(text: &str) -> Result<Version, String> {
        if text.is_empty() {
            return Err("the version is empty".into());
        }
        if text.len() > MAX_VERSION_LEN {
            return Err(format!(
                "version {text:?} is longer than {MAX_VERSION_LEN} characters"
            ));
        }
        if !text.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
            return Err(format!(
                "version {text:?} has characters other than digits and dots"
            ));
        }
        if text.split('.').any(str::is_empty) {
            return Err(format!(
                "version {text:?} has an empty part (a leading, trailing or doubled dot)"
            ));
        }
        Ok(Version(text.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Ord for Version {
    fn cmp(&self, other: &Version) -> Ordering {
        let mut a = self.0.split('.');
        let mut b = other.0.split('.');
        loop {
            match (a.next(), b.next()) {
                (None, None) => return self.0.cmp(&other.0),
                (None, Some(_)) => return Ordering::Less,
                (Some(_), None) => return Ordering::Greater,
                (Some(x), Some(y)) => {
                    let ord = numeric(x, y);
                    if ord != Ordering::Equal {
                        return ord;
                    }
                }
            }
        }
    }
}

impl PartialOrd for Version {
    fn partial_cmp(&self, other: &Version) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// Two runs of digits compared as numbers of any length.
fn numeric(x: &str, y: &str) -> Ordering {
    let x = x.trim_start_matches('0');
    let y = y.trim_start_matches('0');
    x.len().cmp(&y.len()).then_with(|| x.cmp(y))
}

/// What an artifact of an update bundle is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ArtifactKind {
    /// `ferrofab_<v>.efi`.
    Uki,
    /// `ferrofab_<v>.root.raw`.
    Root,
}

impl ArtifactKind {
    pub fn describe(self) -> &'static str {
        match self {
            ArtifactKind::Uki => "the UKI (ferrofab_<version>.efi)",
            ArtifactKind::Root => "the root partition image (ferrofab_<version>.root.raw)",
        }
    }
}

/// `name` as an artifact of the image: its kind and version; `None` for any other name.
pub fn artifact(name: &str) -> Option<(ArtifactKind, Version)> {
    let rest = name.strip_prefix(PREFIX)?;
    // `.root.raw` first: a version has no letters, so `.efi` cannot end a root image's name.
    let (kind, version) = if let Some(v) = rest.strip_suffix(ROOT_SUFFIX) {
        (ArtifactKind::Root, v)
    } else {
        (ArtifactKind::Uki, rest.strip_suffix(UKI_SUFFIX)?)
    };
    Version::parse(version).ok().map(|v| (kind, v))
}

/// What systemd-boot's boot counting says of an entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EntryState {
    /// No counter: booted and blessed (or never counted).
    Good,
    /// Tries left, not yet blessed.
    Indeterminate,
    /// No tries left: systemd-boot sorts it last and boots it only when nothing else is left.
    Bad,
}

/// A boot entry's name taken apart: `ferrofab_<version>[+<left>[-<done>]].efi`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EntryName {
    pub version: Version,
    pub tries_left: Option<u32>,
    pub tries_done: Option<u32>,
}

impl EntryName {
    /// `name` as a boot entry of the image (the `.efi` suffix in any case, as FAT keeps it);
    /// `None` for any other name.
    pub fn parse(name: &str) -> Option<EntryName> {
        let rest = name.strip_prefix(PREFIX)?;
        let cut = rest.len().checked_sub(UKI_SUFFIX.len())?;
        let (stem, suffix) = (rest.get(..cut)?, rest.get(cut..)?);
        if !suffix.eq_ignore_ascii_case(UKI_SUFFIX) {
            return None;
        }
        let (version, counter) = match stem.split_once('+') {
            Some((v, c)) => (v, Some(c)),
            None => (stem, None),
        };
        let version = Version::parse(version).ok()?;
        let (tries_left, tries_done) = match counter {
            None => (None, None),
            Some(c) => {
                let (left, done) = match c.split_once('-') {
                    Some((l, d)) => (l, Some(count(d)?)),
                    None => (c, None),
                };
                (Some(count(left)?), done)
            }
        };
        Some(EntryName {
            version,
            tries_left,
            tries_done,
        })
    }

    pub fn state(&self) -> EntryState {
        match self.tries_left {
            None => EntryState::Good,
            Some(0) => EntryState::Bad,
            Some(_) => EntryState::Indeterminate,
        }
    }
}

/// A boot counter: digits only.
fn count(text: &str) -> Option<u32> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> Version {
        Version::parse(s).unwrap()
    }

    #[test]
    fn versions_are_digits_and_dots() {
        for good in ["0", "0.1.0.2", "2026.1", "10.0.0.1"] {
            assert_eq!(v(good).as_str(), good);
        }
        for bad in [
            "", ".1", "1.", "1..2", "1.a", "v1", "1-2", "1 2", "1/2", "../1",
        ] {
            assert!(Version::parse(bad).is_err(), "{bad:?}");
        }
        assert!(Version::parse(&"1".repeat(MAX_VERSION_LEN + 1)).is_err());
    }

    #[test]
    fn versions_order_by_number_per_part() {
        assert!(v("0.1.0.10") > v("0.1.0.9"));
        assert!(v("0.2") > v("0.1.99"));
        assert!(v("1.0.1") > v("1.0"));
        assert!(v("1.0") < v("1.0.0"));
        assert!(v("01.2") > v("1.1"));
        assert!(v("99999999999999999999999") > v("9999999999999999999999"));
        assert_eq!(v("0.1.0.2").cmp(&v("0.1.0.2")), Ordering::Equal);
        // Equal as numbers yet spelled apart: still a total order.
        assert_ne!(v("01").cmp(&v("1")), Ordering::Equal);
    }

    #[test]
    fn artifact_names() {
        assert_eq!(
            artifact("ferrofab_0.1.0.2.efi"),
            Some((ArtifactKind::Uki, v("0.1.0.2")))
        );
        assert_eq!(
            artifact("ferrofab_0.1.0.2.root.raw"),
            Some((ArtifactKind::Root, v("0.1.0.2")))
        );
        for other in [
            "ferrofab_.efi",
            "ferrofab_0.1.root",
            "ferrofab_0.1.raw",
            "ferrofab_0.1+3.efi",
            "other_0.1.efi",
            "ferrofab_0.1.usr.raw",
            "SHA256SUMS",
        ] {
            assert_eq!(artifact(other), None, "{other}");
        }
    }

    #[test]
    fn boot_entry_names_in_every_form() {
        let e = EntryName::parse("ferrofab_0.1.0.2.efi").unwrap();
        assert_eq!(
            (e.version.as_str(), e.tries_left, e.tries_done, e.state()),
            ("0.1.0.2", None, None, EntryState::Good)
        );
        let e = EntryName::parse("ferrofab_0.1.0.2+3.efi").unwrap();
        assert_eq!(
            (e.tries_left, e.tries_done, e.state()),
            (Some(3), None, EntryState::Indeterminate)
        );
        let e = EntryName::parse("ferrofab_0.1.0.2+2-1.efi").unwrap();
        assert_eq!(
            (e.tries_left, e.tries_done, e.state()),
            (Some(2), Some(1), EntryState::Indeterminate)
        );
        let e = EntryName::parse("ferrofab_0.1.0.3+0-3.efi").unwrap();
        assert_eq!(
            (e.version.as_str(), e.tries_left, e.tries_done, e.state()),
            ("0.1.0.3", Some(0), Some(3), EntryState::Bad)
        );
        let e = EntryName::parse("ferrofab_1+0.EFI").unwrap();
        assert_eq!(e.state(), EntryState::Bad);
        for other in [
            "ferrofab_0.1.efi.bak",
            "ferrofab_0.1+.efi",
            "ferrofab_0.1+1-.efi",
            "ferrofab_0.1+-1.efi",
            "ferrofab_0.1+a.efi",
            "ferrofab_0.1+1-2-3.efi",
            "ferrofab_0.1+99999999999.efi",
            "ferrofab_+1.efi",
            "ferrofab_.efi",
            "ferrofab_",
            "linux.efi",
            "ferrofab_0.1é.efi",
        ] {
            assert_eq!(EntryName::parse(other), None, "{other}");
        }
    }
}
