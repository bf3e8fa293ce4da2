//! Text from requesters, shown to approvers as what it is.

/// `text` with every invisible or direction-changing character made
/// visible as `\u{…}`: bidirectional overrides and isolates, zero-width
/// characters, soft hyphens, the byte-order mark, tag characters, and
/// controls. Escaping HTML or `mrkdwn` keeps markup out, but not these,
/// with which a resource id or an amount would read differently from what
/// it is (a right-to-left override turns `pay_123` into what looks like
/// another id).
pub fn shown(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if hidden(c) {
            out.push_str(&format!("\\u{{{:04X}}}", u32::from(c)));
        } else {
            out.push(c);
        }
    }
    out
}

/// Whether `c` changes how text reads without being seen itself.
fn hidden(c: char) -> bool {
    c.is_control()
        || matches!(u32::from(c),
            0x00AD | 0x034F | 0x061C | 0x115F | 0x1160 | 0x17B4 | 0x17B5 | 0x180B..=0x180F
            | 0x200B..=0x200F | 0x202A..=0x202E | 0x2060..=0x206F | 0x3164 | 0xFE00..=0xFE0F
            | 0xFEFF | 0xFFA0 | 0xFFF9..=0xFFFB | 0xE0000..=0xE0FFF)
}

#[cfg(test)]
mod tests {
    use super::shown;

    #[test]
    fn hidden_characters_are_shown_for_what_they_are() {
        assert_eq!(shown("pay_123"), "pay_123");
        assert_eq!(shown("pay_\u{202E}321"), "pay_\\u{202E}321");
        assert_eq!(
            shown("a\u{200B}b\u{2066}c\u{FEFF}"),
            "a\\u{200B}b\\u{2066}c\\u{FEFF}"
        );
        assert_eq!(shown("line\nbreak\u{7}"), "line\\u{000A}break\\u{0007}");
        assert_eq!(shown("Zürich 💶 東京"), "Zürich 💶 東京");
    }
}
