//! Host names as agencies write them in inventories and watch lists: one name, IDNA to ASCII,
//! lower case, host-name labels. Shared by `config` (checking watch lists) and `audit`
//! (reading an inventory), so neither depends on the other.

/// Why a text is not one host name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HostnameError {
    #[error("more than one word (one name a line)")]
    Words,
    #[error("a URL, not a name (write the host name only)")]
    Url,
    #[error("an address, not a name")]
    Address,
    #[error("not a valid domain name (IDNA)")]
    Idna,
    #[error("empty or longer than 253 characters")]
    Length,
    #[error("an empty label or one longer than 63 characters")]
    LabelLength,
    #[error("label {0:?} is not a host name label")]
    Label(String),
}

/// The name in the form the audit uses, or why the text is not a domain name.
pub fn normalise(text: &str) -> Result<String, HostnameError> {
    if text.chars().any(|c| c.is_whitespace()) {
        return Err(HostnameError::Words);
    }
    if text.contains("://") || text.contains('/') {
        return Err(HostnameError::Url);
    }
    if text.parse::<std::net::IpAddr>().is_ok() {
        return Err(HostnameError::Address);
    }
    let ascii = idna::domain_to_ascii(text.trim_end_matches('.'))
        .map_err(|_| HostnameError::Idna)?
        .to_ascii_lowercase();
    if ascii.is_empty() || ascii.len() > 253 {
        return Err(HostnameError::Length);
    }
    for label in ascii.split('.') {
        if label.is_empty() || label.len() > 63 {
            return Err(HostnameError::LabelLength);
        }
        let ok = label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !ok || label.starts_with('-') || label.ends_with('-') {
            return Err(HostnameError::Label(label.to_string()));
        }
    }
    Ok(ascii)
}
