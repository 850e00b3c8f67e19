//! Lists, with the real server's `resourceVersion` semantics (unset: most recent; "0": any,
//! here the most recent; N: not older than N, or exactly N with `resourceVersionMatch=Exact`)
//! and paging: `limit`, and an opaque `continue` token that carries the list's revision and the
//! last key, so every page reads the same snapshot; a token from before the compaction point is
//! `410 Expired`.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};

use super::resources::ResourceType;
use super::selector::Selector;
use super::state::State;
use super::status::ApiError;

/// What a list asks for.
#[derive(Debug, Default)]
pub(super) struct ListQuery {
    pub selector: Selector,
    pub limit: Option<usize>,
    pub continue_token: Option<String>,
    pub resource_version: Option<String>,
    pub version_match: Option<String>,
}

/// One page of a list.
#[derive(Debug)]
pub(super) struct Page {
    pub items: Vec<Value>,
    /// The revision the list was read at.
    pub revision: u64,
    pub continue_token: Option<String>,
    pub remaining: Option<usize>,
}

const TOO_OLD: &str = "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter.";

fn encode(revision: u64, namespace: &str, name: &str) -> String {
    let token =
        json!({"v": "meta.k8s.io/v1", "rv": revision, "start": format!("{namespace}/{name}\u{0}")});
    URL_SAFE_NO_PAD.encode(token.to_string())
}

fn decode(token: &str) -> Option<(u64, String, String)> {
    let bytes = URL_SAFE_NO_PAD.decode(token).ok()?;
    let token: Value = serde_json::from_slice(&bytes).ok()?;
    let start = token["start"].as_str()?.strip_suffix('\u{0}')?;
    let (namespace, name) = start.split_once('/')?;
    Some((token["rv"].as_u64()?, namespace.to_owned(), name.to_owned()))
}

fn revision(text: &str) -> Result<u64, ApiError> {
    text.parse()
        .map_err(|_| ApiError::bad_request(format!("invalid resource version: {text:?}")))
}

// === impl State ===

impl State {
    /// A page of the objects of `rt` (in `namespace`, if given) that `query` selects, as stored.
    pub fn list(
        &self,
        rt: &ResourceType,
        namespace: Option<&str>,
        query: &ListQuery,
    ) -> Result<Page, ApiError> {
        let current = self.store.revision();
        let asked = query.resource_version.as_deref().filter(|v| !v.is_empty());
        let (at, after) = match (&query.continue_token, asked, query.version_match.as_deref()) {
            (Some(_), Some(_), _) => {
                let message = "specifying resource version is not allowed when using continue";
                return Err(ApiError::bad_request(message));
            }
            (Some(token), None, _) => {
                let (at, ns, name) = decode(token)
                    .ok_or_else(|| ApiError::bad_request("continue key is not valid"))?;
                if at < self.store.compacted() {
                    return Err(ApiError::expired(TOO_OLD));
                }
                (at, Some((ns, name)))
            }
            (None, None, Some(_)) => {
                let message =
                    "resourceVersionMatch is forbidden unless resourceVersion is provided";
                return Err(ApiError::bad_request(message));
            }
            (None, None | Some("0"), None) => (current, None),
            (None, Some(v), Some("Exact")) => {
                let v = revision(v)?;
                if v == 0 {
                    let message =
                        "resourceVersionMatch \"exact\" is forbidden for resourceVersion \"0\"";
                    return Err(ApiError::bad_request(message));
                }
                if v > current {
                    return Err(ApiError::too_large_resource_version(v, current));
                }
                (v, None)
            }
            (None, Some(v), None | Some("NotOlderThan")) => {
                let v = revision(v)?;
                if v > current {
                    return Err(ApiError::too_large_resource_version(v, current));
                }
                (current, None)
            }
            (None, Some(_), Some(other)) => {
                let message = format!("resourceVersionMatch: Unsupported value: {other:?}");
                return Err(ApiError::bad_request(message));
            }
        };
        let objects = self
            .store
            .at(&rt.group, &rt.plural, namespace, at)
            .map_err(|_| {
                ApiError::expired("The resourceVersion for the provided list is too old.")
            })?;
        let mut selected = objects
            .into_iter()
            .filter(|(k, _)| {
                after
                    .as_ref()
                    .is_none_or(|(ns, n)| (&k.namespace, &k.name) > (ns, n))
            })
            .filter(|(_, o)| query.selector.matches(o));
        let limit = query.limit.filter(|l| *l > 0).unwrap_or(usize::MAX);
        let page: Vec<_> = selected.by_ref().take(limit).collect();
        let rest = selected.count();
        let continue_token = match page.last() {
            Some((k, _)) if rest > 0 => Some(encode(at, &k.namespace, &k.name)),
            _ => None,
        };
        let remaining = (rest > 0 && query.selector == Selector::default()).then_some(rest);
        Ok(Page {
            items: page.into_iter().map(|(_, o)| o).collect(),
            revision: at,
            continue_token,
            remaining,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn continue_tokens_round_trip_and_reject_garbage() {
        let token = encode(42, "shop", "web-1");
        assert_eq!(decode(&token), Some((42, "shop".into(), "web-1".into())));
        assert_eq!(
            decode(&encode(7, "", "cluster-thing")),
            Some((7, "".into(), "cluster-thing".into()))
        );
        assert_eq!(decode("not a token"), None);
    }
}
