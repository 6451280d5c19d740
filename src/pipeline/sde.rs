//! Structured DNS Errors (draft-ietf-dnsop-structured-dns-error): when the query carries an EDE
//! option, a blocked answer's EDE EXTRA-TEXT is minified I-JSON a client can parse and show —
//! `c` contact URIs, `j` justification, `s` sub-error, `o` organisation, `l` language —
//! instead of the RFC 8914 free text.

use std::collections::HashMap;

use serde::Serialize;

use crate::config::Config;
use crate::policy::{Category, RuleRef};

/// Sub-error codes of the draft's registry that the defaults use.
pub const SUBERROR_MALWARE: u16 = 1;

/// What every structured error says, read once from the config.
#[derive(Debug, Clone, Default)]
pub struct Sde {
    contact_uris: Vec<String>,
    organisation: Option<String>,
    /// `[[lists]] sde_suberror`, by list name.
    suberrors: HashMap<String, u16>,
}

/// The JSON object, fields in the draft's order; absent fields are left out.
#[derive(Serialize)]
struct Fields<'a> {
    c: &'a [String],
    #[serde(skip_serializing_if = "Option::is_none")]
    j: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    s: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    o: Option<&'a str>,
    l: &'a str,
}

impl Sde {
    pub fn from_config(config: &Config) -> Sde {
        Sde {
            contact_uris: config.policy.contact_uris.clone(),
            organisation: config.policy.organisation.clone(),
            suberrors: config
                .lists
                .iter()
                .filter_map(|l| Some((l.name.clone(), l.sde_suberror?)))
                .collect(),
        }
    }

    /// The list's `sde_suberror`, else malware for threat lists; abandoned-domain and other
    /// lists have no matching code in the registry and send none.
    fn suberror(&self, rule: &RuleRef) -> Option<u16> {
        self.suberrors
            .get(&*rule.list)
            .copied()
            .or(match rule.category {
                Category::Threat => Some(SUBERROR_MALWARE),
                _ => None,
            })
    }

    /// EXTRA-TEXT for a block by `rule`, at most `budget` bytes: the whole object; else
    /// without `j`; else without `j` and `o`; else empty (the INFO-CODE alone still says
    /// Blocked/Filtered).
    pub fn extra_text(&self, rule: &RuleRef, budget: usize) -> Vec<u8> {
        let justification = format!(
            "{} list \"{}\" matched {}",
            rule.category.as_str(),
            rule.list,
            rule.trigger_name
        );
        let mut fields = Fields {
            c: &self.contact_uris,
            j: Some(&justification),
            s: self.suberror(rule),
            o: self.organisation.as_deref(),
            l: "en",
        };
        let encode = |f: &Fields<'_>| serde_json::to_vec(f).unwrap_or_default();
        let full = encode(&fields);
        if full.len() <= budget {
            return full;
        }
        fields.j = None;
        let without_j = encode(&fields);
        if without_j.len() <= budget {
            return without_j;
        }
        fields.o = None;
        let minimal = encode(&fields);
        if minimal.len() <= budget {
            return minimal;
        }
        Vec::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn rule(category: Category) -> RuleRef {
        RuleRef {
            list: Arc::from("feed"),
            category,
            file: Arc::from(std::path::Path::new("/x")),
            line: 1,
            trigger_name: "evil.example".into(),
        }
    }

    fn sde() -> Sde {
        Sde {
            contact_uris: vec!["tel:+84-24-1234".into(), "mailto:soc@example.vn".into()],
            organisation: Some("Example Agency".into()),
            suberrors: HashMap::from([("phish".to_string(), 2)]),
        }
    }

    #[test]
    fn full_object_is_minified_json_with_every_field() {
        let text = sde().extra_text(&rule(Category::Threat), 1000);
        let v: serde_json::Value = serde_json::from_slice(&text).unwrap();
        assert_eq!(v["c"][0], "tel:+84-24-1234");
        assert_eq!(v["s"], 1);
        assert_eq!(v["o"], "Example Agency");
        assert_eq!(v["l"], "en");
        assert!(v["j"].as_str().unwrap().contains("evil.example"));
        assert!(!String::from_utf8_lossy(&text).contains(": "), "minified");
    }

    #[test]
    fn drops_j_then_o_then_everything_as_the_budget_shrinks() {
        let s = sde();
        let r = rule(Category::Threat);
        let full = s.extra_text(&r, 1000).len();
        let no_j = s.extra_text(&r, full - 1);
        let v: serde_json::Value = serde_json::from_slice(&no_j).unwrap();
        assert!(v.get("j").is_none() && v.get("o").is_some());
        let no_o = s.extra_text(&r, no_j.len() - 1);
        let v: serde_json::Value = serde_json::from_slice(&no_o).unwrap();
        assert!(v.get("j").is_none() && v.get("o").is_none() && v.get("c").is_some());
        assert!(s.extra_text(&r, no_o.len() - 1).is_empty());
    }

    #[test]
    fn suberror_from_list_then_category() {
        let s = sde();
        let mut r = rule(Category::Abandoned);
        assert_eq!(s.suberror(&r), None);
        r.list = Arc::from("phish");
        assert_eq!(s.suberror(&r), Some(2));
    }
}
