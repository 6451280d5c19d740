//! Host names as agencies write them in inventories and watch lists: one name, IDNA to ASCII,
//! lower case, host-name labels. Shared by `config` (checking watch lists) and `audit`
//! (reading an inventory), so neither depends on the other.

/// The name in the form the audit uses, or why the text is not a domain name.
pub fn normalise(text: &str) -> Result<String, String> {
    if text.chars().any(|c| c.is_whitespace()) {
        return Err("more than one word (one name a line)".into());
    }
    if text.contains("://") || text.contains('/') {
        return Err("a URL, not a name (write the host name only)".into());
    }
    if text.parse::<std::net::IpAddr>().is_ok() {
        return Err("an address, not a name".into());
    }
    let ascii = idna::domain_to_ascii(text.trim_end_matches('.'))
        .map_err(|_| "not a valid domain name (IDNA)".to_string())?
        .to_ascii_lowercase();
    if ascii.is_empty() || ascii.len() > 253 {
        return Err("empty or longer than 253 characters".into());
    }
    for label in ascii.split('.') {
        if label.is_empty() || label.len() > 63 {
            return Err("an empty label or one longer than 63 characters".into());
        }
        let ok = label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !ok || label.starts_with('-') || label.ends_with('-') {
            return Err(format!("label {label:?} is not a host name label"));
        }
    }
    Ok(ascii)
}
