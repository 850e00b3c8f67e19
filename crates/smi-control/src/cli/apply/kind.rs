//! The SMI kinds as `smictl get` and `smictl delete` take them, and as keys and output lines
//! name them.

use std::fmt;
use std::str::FromStr;

/// One of the SMI kinds the loader reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    TrafficTarget,
    HttpRouteGroup,
    TcpRoute,
    UdpRoute,
    TrafficSplit,
}

impl Kind {
    pub const ALL: [Kind; 5] = [
        Kind::TrafficTarget,
        Kind::HttpRouteGroup,
        Kind::TcpRoute,
        Kind::UdpRoute,
        Kind::TrafficSplit,
    ];

    /// As in an object's `kind:`, and in its key (`policy/<Kind>/<namespace>/<name>`).
    pub fn name(self) -> &'static str {
        match self {
            Kind::TrafficTarget => "TrafficTarget",
            Kind::HttpRouteGroup => "HTTPRouteGroup",
            Kind::TcpRoute => "TCPRoute",
            Kind::UdpRoute => "UDPRoute",
            Kind::TrafficSplit => "TrafficSplit",
        }
    }

    pub fn group(self) -> &'static str {
        match self {
            Kind::TrafficTarget => "access.smi-spec.io",
            Kind::HttpRouteGroup | Kind::TcpRoute | Kind::UdpRoute => "specs.smi-spec.io",
            Kind::TrafficSplit => "split.smi-spec.io",
        }
    }

    /// The CRDs' short names (SMI defines none for the L4 routes).
    fn short(self) -> Option<&'static str> {
        match self {
            Kind::TrafficTarget => Some("tt"),
            Kind::HttpRouteGroup => Some("htr"),
            Kind::TrafficSplit => Some("ts"),
            Kind::TcpRoute | Kind::UdpRoute => None,
        }
    }

    /// The kind of a stored object's exact `kind:` (the loader reads no other spelling).
    pub fn from_name(name: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.name() == name)
    }

    /// Whether `word` (lowercase, without a group) names this kind: singular, plural or short.
    fn is_called(self, word: &str) -> bool {
        let singular = self.name().to_ascii_lowercase();
        word == singular || word.strip_suffix('s') == Some(&singular) || self.short() == Some(word)
    }
}

/// `traffictarget.access.smi-spec.io`: kubectl's `kind.group`, how output lines name a kind.
impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.name().to_ascii_lowercase(), self.group())
    }
}

/// Case-insensitive: singular, plural or short name (`traffictarget`, `TrafficTargets`, `tt`),
/// optionally with the group (`traffictargets.access.smi-spec.io`), as kubectl takes them.
impl FromStr for Kind {
    type Err = String;

    fn from_str(s: &str) -> Result<Kind, String> {
        let lower = s.to_ascii_lowercase();
        Kind::ALL
            .into_iter()
            .find(|k| {
                let word = lower
                    .strip_suffix(k.group())
                    .and_then(|w| w.strip_suffix('.'))
                    .unwrap_or(&lower);
                k.is_called(word)
            })
            .ok_or_else(|| {
                let known: Vec<String> = Kind::ALL
                    .iter()
                    .map(|k| match k.short() {
                        Some(short) => format!("{} ({short})", k.name().to_ascii_lowercase()),
                        None => k.name().to_ascii_lowercase(),
                    })
                    .collect();
                format!("unknown kind {s:?}; one of {}", known.join(", "))
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_are_read_in_any_case_singular_plural_short_or_with_their_group() {
        let cases = [
            ("traffictarget", Kind::TrafficTarget),
            ("TrafficTargets", Kind::TrafficTarget),
            ("tt", Kind::TrafficTarget),
            ("traffictargets.access.smi-spec.io", Kind::TrafficTarget),
            ("HTTPRouteGroup", Kind::HttpRouteGroup),
            ("htr", Kind::HttpRouteGroup),
            ("tcproutes", Kind::TcpRoute),
            ("UDPRoute", Kind::UdpRoute),
            ("ts", Kind::TrafficSplit),
            ("trafficsplit.split.smi-spec.io", Kind::TrafficSplit),
        ];
        for (text, kind) in cases {
            assert_eq!(text.parse::<Kind>(), Ok(kind), "{text}");
        }
        for wrong in [
            "",
            "t",
            "traffic",
            "trafficsplitss",
            "trafficsplit.access.smi-spec.io",
        ] {
            let err = wrong.parse::<Kind>().unwrap_err();
            assert!(err.contains("one of traffictarget (tt), "), "{err}");
        }
    }

    #[test]
    fn a_kind_is_shown_with_its_group_and_keyed_by_its_name() {
        assert_eq!(
            Kind::TrafficTarget.to_string(),
            "traffictarget.access.smi-spec.io"
        );
        assert_eq!(
            Kind::HttpRouteGroup.to_string(),
            "httproutegroup.specs.smi-spec.io"
        );
        for kind in Kind::ALL {
            assert_eq!(Kind::from_name(kind.name()), Some(kind));
        }
        assert_eq!(Kind::from_name("traffictarget"), None);
    }
}
