//! The block page's texts, in the languages `[blockpage] languages` may name, and the choice
//! of language from `?lang=` or Accept-Language.

/// Every text of the page in one language.
pub struct Texts {
    pub lang: &'static str,
    /// The language's own name, for the switch between languages.
    pub name: &'static str,
    pub title: &'static str,
    pub heading: &'static str,
    pub threat: &'static str,
    pub abandoned: &'static str,
    pub other: &'static str,
    pub not_blocked: &'static str,
    pub domain: &'static str,
    pub category: &'static str,
    pub list: &'static str,
    pub time: &'static str,
    pub reference: &'static str,
    pub contact: &'static str,
    pub appeal: &'static str,
    pub mistake: &'static str,
    pub category_threat: &'static str,
    pub category_abandoned: &'static str,
}

pub const VI: Texts = Texts {
    lang: "vi",
    name: "Tiếng Việt",
    title: "Trang web đã bị chặn",
    heading: "Truy cập đến trang web này đã bị chặn",
    threat: "Tên miền này được đánh giá là nguy hiểm (lừa đảo, mã độc) và đã bị chặn để bảo vệ bạn.",
    abandoned: "Tên miền này không còn được cơ quan sử dụng và có thể đã thuộc về người khác, nên đã bị chặn để bảo vệ bạn.",
    other: "Tên miền này đã bị chặn theo chính sách của mạng.",
    not_blocked: "Tên miền này hiện không bị chặn. Hãy thử tải lại trang.",
    domain: "Tên miền",
    category: "Phân loại",
    list: "Danh sách",
    time: "Thời gian (UTC)",
    reference: "Mã tham chiếu",
    contact: "Đường dây nóng",
    appeal: "Khiếu nại",
    mistake: "Nếu bạn cho rằng đây là nhầm lẫn, hãy liên hệ đường dây nóng và đọc mã tham chiếu.",
    category_threat: "nguy hiểm",
    category_abandoned: "tên miền bỏ không",
};

pub const EN: Texts = Texts {
    lang: "en",
    name: "English",
    title: "Site blocked",
    heading: "Access to this site has been blocked",
    threat: "This domain is listed as dangerous (fraud, malware) and was blocked to protect you.",
    abandoned: "This domain is no longer used by the agency and may now belong to someone else, so it was blocked to protect you.",
    other: "This domain was blocked by the network's policy.",
    not_blocked: "This domain is not blocked now. Try reloading the page.",
    domain: "Domain",
    category: "Category",
    list: "List",
    time: "Time (UTC)",
    reference: "Reference ID",
    contact: "Hotline",
    appeal: "Appeal",
    mistake: "If you think this is a mistake, call the hotline and give the reference ID.",
    category_threat: "threat",
    category_abandoned: "abandoned domain",
};

/// The texts for a configured language code (`config` checks the codes).
pub fn texts(lang: &str) -> &'static Texts {
    match lang {
        "vi" => &VI,
        _ => &EN,
    }
}

/// `?lang=` when it names an offered language, else the offered language the
/// Accept-Language header ranks highest, else the first offered one.
pub fn choose<'a>(
    offered: &'a [String],
    query_lang: Option<&str>,
    accept_language: Option<&str>,
) -> &'a str {
    let find = |tag: &str| {
        let primary = tag
            .split('-')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        offered.iter().find(|o| **o == primary)
    };
    if let Some(l) = query_lang.and_then(find) {
        return l;
    }
    let mut ranked: Vec<(f32, usize, &str)> = accept_language
        .unwrap_or("")
        .split(',')
        .enumerate()
        .filter_map(|(i, part)| {
            let mut it = part.split(';');
            let tag = it.next()?.trim();
            let q = it
                .find_map(|p| p.trim().strip_prefix("q="))
                .map_or(Some(1.0), |q| q.trim().parse::<f32>().ok())?;
            (!tag.is_empty() && q > 0.0).then_some((q, i, tag))
        })
        .collect();
    // Highest q first; equal q keeps the header's order.
    ranked.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    ranked.iter().find_map(|(_, _, tag)| find(tag)).map_or_else(
        || offered.first().map_or("en", String::as_str),
        String::as_str,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn language_from_query_then_header_then_default() {
        let offered = vec!["vi".to_string(), "en".to_string()];
        assert_eq!(choose(&offered, None, None), "vi");
        assert_eq!(choose(&offered, None, Some("en-US,en;q=0.9")), "en");
        assert_eq!(choose(&offered, None, Some("fr, vi;q=0.5, en;q=0.8")), "en");
        assert_eq!(choose(&offered, None, Some("de")), "vi");
        assert_eq!(choose(&offered, Some("en"), Some("vi")), "en");
        assert_eq!(choose(&offered, None, Some("en;q=0, vi-VN")), "vi");
    }
}
