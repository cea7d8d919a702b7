//! Mandarin text as it is read aloud.
//!
//! A script line such as `您的订单 300.50 元，请拨 13800138000` holds digits
//! that a voice would otherwise read the wrong way, or in English.
//! [`normalize`] writes them out the Chinese way before synthesis:
//!
//! - amounts in yuan (`300.50 元`, `300.50元`, `¥300.50`, `￥12`):
//!   `三百元五角`, `十二元`, with jiao and fen (`零五分` for `.05`);
//! - percentages (`15%`, `15％`): `百分之十五`;
//! - dates (`2026-12-03`, `2026/12/3`, and digits before `年`, `月`, `日`
//!   or `号`): the year digit by digit (`二零二六年`), month and day as
//!   numbers (`十二月三日`);
//! - times (`14:30`, `9:05`): `十四点三十分`, `九点零五分`, `十四点整`;
//! - phone numbers (seven digits or more, an optional `+` and spaces or
//!   hyphens between groups): digit by digit, with `幺` for 1 as is said on
//!   the phone;
//! - other numbers: as quantities (`105` → `一百零五`, `3.14` → `三点一四`,
//!   `-5` → `负五`), with `两` for a leading 2 before 百, 千, 万 and 亿.
//!
//! Everything else, Latin words included, passes through unchanged: the
//! voice decides how to say an English word inside a Mandarin line.
//!
//! [`numbered_pinyin`] writes normalised text as pinyin syllables with tone
//! numbers (`您好` → `nin2 hao3`), for a voice that reads pinyin rather than
//! characters: espeak-ng's `cmn` voice reads characters as numbered pinyin
//! spoken in English ("nin-two"), so dialhound never gives it characters.
//! The reading is the most common one of each character; words whose reading
//! depends on context (`银行`, `重庆`) may be read the common way.

use pinyin::ToPinyin;

/// `text` with its numbers written out in Chinese characters.
pub fn normalize(text: &str) -> String {
    // Full-width digits (`３００`) are read as the ASCII ones.
    let chars: Vec<char> = text
        .chars()
        .map(|c| match c {
            '０'..='９' => char::from(b'0' + (u32::from(c) - u32::from('０')) as u8),
            _ => c,
        })
        .collect();
    let mut out = String::with_capacity(text.len() * 2);
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if (c == '¥' || c == '￥') && chars.get(i + 1).is_some_and(char::is_ascii_digit) {
            let number = scan_number(&chars, i + 1);
            out.push_str(&amount(&number.text));
            i = number.end;
            // `¥300 元` names the unit twice; say it once.
            i = skip_unit_after(&chars, i).unwrap_or(i);
            continue;
        }
        if !c.is_ascii_digit() {
            if c == '-'
                && chars.get(i + 1).is_some_and(char::is_ascii_digit)
                && !i
                    .checked_sub(1)
                    .is_some_and(|before| chars[before].is_ascii_alphanumeric())
            {
                let number = scan_number(&chars, i + 1);
                if !is_phone_like(&chars, i + 1) {
                    out.push('负');
                    out.push_str(&quantity(&number.text));
                    i = number.end;
                    continue;
                }
            }
            out.push(c);
            i += 1;
            continue;
        }
        // A run that starts with a digit.
        if let Some((said, end)) = date(&chars, i) {
            out.push_str(&said);
            i = end;
            continue;
        }
        if let Some((said, end)) = clock_time(&chars, i) {
            out.push_str(&said);
            i = end;
            continue;
        }
        if let Some((said, end)) = phone_number(&chars, i) {
            out.push_str(&said);
            i = end;
            continue;
        }
        let number = scan_number(&chars, i);
        if let Some(end) = skip_unit_after(&chars, number.end) {
            out.push_str(&amount(&number.text));
            i = end;
            continue;
        }
        if let Some(&percent) = chars.get(number.end)
            && (percent == '%' || percent == '％')
        {
            out.push_str("百分之");
            out.push_str(&quantity(&number.text));
            i = number.end + 1;
            continue;
        }
        if let Some(&unit) = chars.get(number.end)
            && matches!(unit, '年')
            && !number.text.contains('.')
        {
            // A year: digit by digit.
            out.push_str(&digits(&number.text, false));
            i = number.end;
            continue;
        }
        out.push_str(&quantity(&number.text));
        i = number.end;
    }
    out
}

/// `text` as pinyin syllables with tone numbers (5 for the neutral tone),
/// separated by spaces; Chinese punctuation becomes the ASCII punctuation a
/// voice pauses at, and anything that is not a Chinese character passes
/// through as it is. Numbers are not touched: [`normalize`] first.
pub fn numbered_pinyin(text: &str) -> String {
    let mut out = String::with_capacity(text.len() * 2);
    let mut last_was_syllable = false;
    for (c, reading) in text.chars().zip(text.to_pinyin()) {
        if let Some(reading) = reading {
            if !out.is_empty() && !out.ends_with(' ') {
                out.push(' ');
            }
            let syllable = reading.with_tone_num_end();
            out.push_str(syllable);
            if !syllable.ends_with(|c: char| c.is_ascii_digit()) {
                out.push('5');
            }
            last_was_syllable = true;
            continue;
        }
        let pause = match c {
            '，' | '、' => Some(","),
            '。' | '！' | '？' | '；' => Some("."),
            '：' => Some(":"),
            '…' => Some("..."),
            '（' | '）' | '「' | '」' | '“' | '”' | '《' | '》' | '【' | '】' => {
                Some(" ")
            }
            _ => None,
        };
        match pause {
            Some(mark) => out.push_str(mark),
            None => {
                if last_was_syllable && !c.is_whitespace() && !c.is_ascii_punctuation() {
                    out.push(' ');
                }
                out.push(c);
            }
        }
        last_was_syllable = false;
    }
    out
}

/// Each character of `text` with its reading: pinyin with the tone number
/// at the end (5 for the neutral tone, `ü` as written) for a Chinese
/// character, `None` for anything else. Numbers are not touched:
/// [`normalize`] first.
pub fn syllables(text: &str) -> Vec<(char, Option<String>)> {
    text.chars()
        .zip(text.to_pinyin())
        .map(|(c, reading)| {
            let syllable = reading.map(|reading| {
                let mut syllable = reading.with_tone_num_end().to_owned();
                if !syllable.ends_with(|c: char| c.is_ascii_digit()) {
                    syllable.push('5');
                }
                syllable
            });
            (c, syllable)
        })
        .collect()
}

/// The digits 0 to 9.
const DIGITS: [char; 10] = ['零', '一', '二', '三', '四', '五', '六', '七', '八', '九'];

/// A number as written: digits with at most one decimal point.
struct Scanned {
    text: String,
    end: usize,
}

fn scan_number(chars: &[char], start: usize) -> Scanned {
    let mut end = start;
    let mut text = String::new();
    let mut seen_point = false;
    while end < chars.len() {
        let c = chars[end];
        if c.is_ascii_digit() {
            text.push(c);
        } else if c == '.' && !seen_point && chars.get(end + 1).is_some_and(char::is_ascii_digit) {
            seen_point = true;
            text.push(c);
        } else if c == ',' && chars.get(end + 1).is_some_and(char::is_ascii_digit) && {
            // A thousands separator: exactly three digits follow.
            let group = chars[end + 1..]
                .iter()
                .take_while(|c| c.is_ascii_digit())
                .count();
            group == 3 && !seen_point
        } {
            // Dropped: `1,200` is one thousand two hundred.
        } else {
            break;
        }
        end += 1;
    }
    Scanned { text, end }
}

/// Where the text goes on after a yuan unit at `at` (spaces allowed before
/// it), if there is one there.
fn skip_unit_after(chars: &[char], at: usize) -> Option<usize> {
    let mut i = at;
    while chars.get(i) == Some(&' ') {
        i += 1;
    }
    match chars.get(i) {
        Some('元' | '块') => Some(i + 1),
        _ => None,
    }
}

/// An amount of yuan: `300.5` → `三百元五角`, `12.34` → `十二元三角四分`,
/// `0.05` → `五分`, `7` → `七元`.
fn amount(number: &str) -> String {
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    let mut fraction = fraction.chars().filter_map(|c| c.to_digit(10));
    let jiao = fraction.next().unwrap_or(0);
    let fen = fraction.next().unwrap_or(0);
    let whole_is_zero = whole.chars().all(|c| c == '0');
    let mut out = String::new();
    if !whole_is_zero || (jiao == 0 && fen == 0) {
        out.push_str(&integer(whole));
        out.push('元');
    }
    if jiao != 0 {
        out.push(DIGITS[jiao as usize]);
        out.push('角');
    }
    if fen != 0 {
        if jiao == 0 && !whole_is_zero {
            out.push('零');
        }
        out.push(DIGITS[fen as usize]);
        out.push('分');
    }
    out
}

/// A quantity: an integer, or one with decimals read digit by digit.
fn quantity(number: &str) -> String {
    match number.split_once('.') {
        Some((whole, fraction)) => {
            let mut out = integer(whole);
            out.push('点');
            out.push_str(&digits(fraction, false));
            out
        }
        None => integer(number),
    }
}

/// Digit by digit; with `phone`, 1 is `幺`.
fn digits(number: &str, phone: bool) -> String {
    number
        .chars()
        .filter_map(|c| c.to_digit(10))
        .map(|d| {
            if phone && d == 1 {
                '幺'
            } else {
                DIGITS[d as usize]
            }
        })
        .collect()
}

/// An integer the way it is counted: `105` → `一百零五`, `10` → `十`,
/// `20000` → `两万`, `100000000` → `一亿`. Numbers of more than twelve
/// digits, which nobody reads as a quantity, go digit by digit.
fn integer(number: &str) -> String {
    let number = number.trim_start_matches('0');
    if number.is_empty() {
        return "零".to_owned();
    }
    if number.len() > 12 {
        return digits(number, false);
    }
    let value: u64 = number.parse().unwrap_or(0);
    let yi = value / 100_000_000;
    let wan = (value / 10_000) % 10_000;
    let rest = value % 10_000;
    let mut out = String::new();
    let mut need_zero = false;
    for (group, unit) in [(yi, Some('亿')), (wan, Some('万')), (rest, None)] {
        if group == 0 {
            if !out.is_empty() {
                need_zero = true;
            }
            continue;
        }
        if need_zero || (!out.is_empty() && group < 1000) {
            out.push('零');
        }
        need_zero = false;
        if group == 2 && unit.is_some() {
            // `两万`, `两亿`.
            out.push('两');
        } else {
            out.push_str(&below_ten_thousand(group, out.is_empty()));
        }
        if let Some(unit) = unit {
            out.push(unit);
        }
    }
    out
}

/// 1 to 9999; `leading` when nothing is said before it (then 10–19 are
/// `十`, `十五`, not `一十五`).
fn below_ten_thousand(value: u64, leading: bool) -> String {
    let places = [(1000, '千'), (100, '百'), (10, '十')];
    let mut out = String::new();
    let mut zero_pending = false;
    let mut remaining = value;
    for (size, unit) in places {
        let digit = remaining / size;
        remaining %= size;
        if digit == 0 {
            if !out.is_empty() {
                zero_pending = true;
            }
            continue;
        }
        if zero_pending {
            out.push('零');
            zero_pending = false;
        }
        let first = out.is_empty();
        if digit == 1 && unit == '十' && first && leading {
            // `十五`, not `一十五`.
        } else if digit == 2 && first && unit != '十' {
            out.push('两');
        } else {
            out.push(DIGITS[digit as usize]);
        }
        out.push(unit);
    }
    if remaining != 0 {
        if zero_pending {
            out.push('零');
        }
        out.push(DIGITS[remaining as usize]);
    }
    out
}

/// A date at `start`: `2026-12-03`, `2026/12/3`, or `2026年12月3日`.
fn date(chars: &[char], start: usize) -> Option<(String, usize)> {
    let run = |from: usize| {
        chars[from..]
            .iter()
            .take_while(|c| c.is_ascii_digit())
            .count()
    };
    let year_len = run(start);
    if year_len != 4 {
        return None;
    }
    let separator = *chars.get(start + 4)?;
    if separator != '-' && separator != '/' {
        return None;
    }
    let month_start = start + 5;
    let month_len = run(month_start);
    if !(1..=2).contains(&month_len) || chars.get(month_start + month_len) != Some(&separator) {
        return None;
    }
    let day_start = month_start + month_len + 1;
    let day_len = run(day_start);
    if !(1..=2).contains(&day_len) {
        return None;
    }
    let text = |from: usize, len: usize| chars[from..from + len].iter().collect::<String>();
    let month: u32 = text(month_start, month_len).parse().ok()?;
    let day: u32 = text(day_start, day_len).parse().ok()?;
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) {
        return None;
    }
    let said = format!(
        "{}年{}月{}日",
        digits(&text(start, 4), false),
        integer(&month.to_string()),
        integer(&day.to_string())
    );
    Some((said, day_start + day_len))
}

/// A time of day at `start`: `14:30`, `9:05`, `8:00`.
fn clock_time(chars: &[char], start: usize) -> Option<(String, usize)> {
    let run = |from: usize| {
        chars[from..]
            .iter()
            .take_while(|c| c.is_ascii_digit())
            .count()
    };
    let hour_len = run(start);
    if !(1..=2).contains(&hour_len) {
        return None;
    }
    let colon = start + hour_len;
    if !matches!(chars.get(colon), Some(':' | '：')) {
        return None;
    }
    let minute_len = run(colon + 1);
    if minute_len != 2 {
        return None;
    }
    let text = |from: usize, len: usize| chars[from..from + len].iter().collect::<String>();
    let hour: u32 = text(start, hour_len).parse().ok()?;
    let minute: u32 = text(colon + 1, 2).parse().ok()?;
    if hour > 24 || minute > 59 {
        return None;
    }
    let mut said = integer(&hour.to_string());
    // The hour of a clock is `两点`, not `二点`.
    if hour == 2 {
        said = "两".to_owned();
    }
    said.push('点');
    match minute {
        0 => said.push('整'),
        1..=9 => {
            said.push('零');
            said.push(DIGITS[minute as usize]);
            said.push('分');
        }
        _ => {
            said.push_str(&integer(&minute.to_string()));
            said.push('分');
        }
    }
    Some((said, colon + 3))
}

/// Whether a phone number starts at `start`.
fn is_phone_like(chars: &[char], start: usize) -> bool {
    phone_number(chars, start).is_some()
}

/// A phone number at `start`: seven digits or more, in groups split by
/// single spaces or hyphens, not part of a decimal number.
fn phone_number(chars: &[char], start: usize) -> Option<(String, usize)> {
    let mut digits_seen = String::new();
    let mut i = start;
    let mut last_digit_end = start;
    while i < chars.len() {
        let c = chars[i];
        if c.is_ascii_digit() {
            digits_seen.push(c);
            i += 1;
            last_digit_end = i;
        } else if (c == ' ' || c == '-') && chars.get(i + 1).is_some_and(char::is_ascii_digit) {
            i += 1;
        } else {
            break;
        }
    }
    let decimal = chars.get(last_digit_end) == Some(&'.')
        && chars
            .get(last_digit_end + 1)
            .is_some_and(char::is_ascii_digit);
    if digits_seen.len() < 7 || decimal {
        return None;
    }
    // A plus sign just before is part of the number; it stays as written.
    Some((digits(&digits_seen, true), last_digit_end))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_are_counted() {
        let cases = [
            ("0", "零"),
            ("7", "七"),
            ("10", "十"),
            ("15", "十五"),
            ("20", "二十"),
            ("105", "一百零五"),
            ("110", "一百一十"),
            ("200", "两百"),
            ("1001", "一千零一"),
            ("2026", "两千零二十六"),
            ("10000", "一万"),
            ("20000", "两万"),
            ("10010", "一万零一十"),
            ("100500", "十万零五百"),
            ("123456789", "一亿两千三百四十五万六千七百八十九"),
            ("100000000", "一亿"),
            ("300000001", "三亿零一"),
        ];
        for (number, said) in cases {
            assert_eq!(integer(number), said, "{number}");
        }
    }

    #[test]
    fn amounts_are_read_in_yuan_jiao_and_fen() {
        assert_eq!(normalize("订单金额300.50 元"), "订单金额三百元五角");
        assert_eq!(normalize("订单金额300.50元。"), "订单金额三百元五角。");
        assert_eq!(normalize("共¥12.34"), "共十二元三角四分");
        assert_eq!(normalize("￥300.05"), "三百元零五分");
        assert_eq!(normalize("只要0.05元"), "只要五分");
        assert_eq!(normalize("¥7 元"), "七元");
        assert_eq!(normalize("1,200元"), "一千二百元");
    }

    #[test]
    fn phone_numbers_are_read_digit_by_digit_with_yao() {
        assert_eq!(normalize("请拨13800138000"), "请拨幺三八零零幺三八零零零");
        assert_eq!(
            normalize("+86 138-0013-8000"),
            "+八六幺三八零零幺三八零零零"
        );
        assert_eq!(normalize("热线 400-810-1010"), "热线 四零零八幺零幺零幺零");
    }

    #[test]
    fn dates_times_and_percentages() {
        assert_eq!(normalize("2026-12-03前"), "二零二六年十二月三日前");
        assert_eq!(normalize("2026年12月3日"), "二零二六年十二月三日");
        assert_eq!(normalize("14:30"), "十四点三十分");
        assert_eq!(normalize("9:05"), "九点零五分");
        assert_eq!(normalize("2:00"), "两点整");
        assert_eq!(normalize("优惠15%"), "优惠百分之十五");
    }

    #[test]
    fn other_numbers_and_text_pass_as_expected() {
        assert_eq!(normalize("3.14"), "三点一四");
        assert_eq!(normalize("零下-5度"), "零下负五度");
        assert_eq!(normalize("第3件"), "第三件");
        assert_eq!(normalize("您好，VIP 会员"), "您好，VIP 会员");
        assert_eq!(normalize("mp3"), "mp三");
        assert_eq!(normalize(""), "");
        assert_eq!(normalize("３００元"), "三百元");
    }

    #[test]
    fn characters_become_numbered_pinyin() {
        assert_eq!(numbered_pinyin("您好"), "nin2 hao3");
        assert_eq!(
            numbered_pinyin("您好，张先生。"),
            "nin2 hao3, zhang1 xian1 sheng1."
        );
        assert_eq!(numbered_pinyin("的"), "de5");
        assert_eq!(numbered_pinyin("按1收到"), "an4 1 shou1 dao4");
        assert_eq!(numbered_pinyin("VIP会员"), "VIP hui4 yuan2");
        assert_eq!(
            numbered_pinyin(&normalize("共300.50元")),
            "gong4 san1 bai3 yuan2 wu3 jiao3"
        );
    }

    #[test]
    fn characters_have_syllables_with_tone_numbers() {
        let readings = syllables("您好的V");
        let got: Vec<(char, Option<&str>)> =
            readings.iter().map(|(c, s)| (*c, s.as_deref())).collect();
        assert_eq!(
            got,
            [
                ('您', Some("nin2")),
                ('好', Some("hao3")),
                ('的', Some("de5")),
                ('V', None)
            ]
        );
        assert_eq!(syllables("女")[0].1.as_deref(), Some("nü3"));
    }

    proptest::proptest! {
        /// Any text, digits and separators mixed in, is normalised without a
        /// panic, and keeps no ASCII digit unless it sits in a Latin word.
        #[test]
        fn any_text_is_normalised(text in "[0-9０-９a-z .,:：/%％¥￥元块年月日号+\\-您好]{0,40}") {
            let said = normalize(&text);
            proptest::prop_assert!(!said.chars().any(|c| ('０'..='９').contains(&c)));
            let words: Vec<&str> = said.split(|c: char| !c.is_ascii_alphanumeric()).collect();
            for word in words {
                if word.chars().any(|c| c.is_ascii_digit()) {
                    proptest::prop_assert!(
                        word.chars().any(|c| c.is_ascii_alphabetic()),
                        "a bare number is left in {said:?} (from {text:?})"
                    );
                }
            }
        }
    }
}
