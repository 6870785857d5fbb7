//! Checksums and structural rules that separate real identifiers from
//! look-alikes. Each takes the identifier's digits (or characters) only.

/// Luhn (mod 10) check over ASCII digits.
pub fn luhn(digits: &[u8]) -> bool {
    if digits.len() < 2 {
        return false;
    }
    let mut sum = 0u32;
    for (i, d) in digits.iter().rev().enumerate() {
        let mut v = u32::from(d - b'0');
        if i % 2 == 1 {
            v *= 2;
            if v > 9 {
                v -= 9;
            }
        }
        sum += v;
    }
    sum.is_multiple_of(10)
}

/// Whether a card number's leading digits (IIN) belong to a known issuer
/// range whose card lengths include `digits.len()`.
pub fn card_issuer(digits: &[u8]) -> Option<&'static str> {
    let n = digits.len();
    let prefix = |k: usize| -> u32 {
        digits[..k.min(n)]
            .iter()
            .fold(0, |a, d| a * 10 + u32::from(d - b'0'))
    };
    let p2 = prefix(2);
    let p3 = prefix(3);
    let p4 = prefix(4);
    let p6 = prefix(6);
    if digits[0] == b'4' && matches!(n, 13 | 16 | 19) {
        return Some("visa");
    }
    if ((51..=55).contains(&p2) || (222_100..=272_099).contains(&p6)) && n == 16 {
        return Some("mastercard");
    }
    if (p2 == 34 || p2 == 37) && n == 15 {
        return Some("amex");
    }
    if (p4 == 6011 || p2 == 65 || (644..=649).contains(&p3) || (622_126..=622_925).contains(&p6))
        && (16..=19).contains(&n)
    {
        return Some("discover");
    }
    if (3528..=3589).contains(&p4) && (16..=19).contains(&n) {
        return Some("jcb");
    }
    if (p2 == 36 || p2 == 38 || p2 == 39 || (300..=305).contains(&p3)) && (14..=19).contains(&n) {
        return Some("diners");
    }
    if p2 == 62 && (16..=19).contains(&n) {
        return Some("unionpay");
    }
    if (2200..=2204).contains(&p4) && (16..=19).contains(&n) {
        return Some("mir");
    }
    if (p2 == 60 || p2 == 81 || p2 == 82 || p3 == 508) && n == 16 {
        return Some("rupay");
    }
    if p4 == 5019 && n == 16 {
        return Some("dankort");
    }
    if digits[0] == b'1' && n == 15 {
        return Some("uatp");
    }
    if (p4 == 5018
        || p4 == 5020
        || p4 == 5038
        || p4 == 5893
        || p4 == 6304
        || p4 == 6759
        || p4 == 6761
        || p4 == 6762
        || p4 == 6763)
        && (12..=19).contains(&n)
    {
        return Some("maestro");
    }
    None
}

/// US SSN area/group/serial rules (SSA): area not 000, 666 or 900-999;
/// group not 00; serial not 0000. Also rejects well-known advertising numbers.
pub fn ssn(digits: &[u8]) -> bool {
    if digits.len() != 9 {
        return false;
    }
    let area = num(&digits[0..3]);
    let group = num(&digits[3..5]);
    let serial = num(&digits[5..9]);
    if area == 0 || area == 666 || area >= 900 || group == 0 || serial == 0 {
        return false;
    }
    // Woolworth's wallet card and the 1962 advertising numbers.
    !matches!(num(digits), 78_051_120 | 219_099_999 | 457_555_462)
        && !digits.iter().all(|&d| d == digits[0])
}

/// US ITIN: 9xx-[50-65|70-88|90-92|94-99]-xxxx.
pub fn itin(digits: &[u8]) -> bool {
    if digits.len() != 9 || digits[0] != b'9' {
        return false;
    }
    let group = num(&digits[3..5]);
    matches!(group, 50..=65 | 70..=88 | 90..=92 | 94..=99)
}

/// ABA routing number checksum (3-7-1 weights) and a valid Federal Reserve prefix.
pub fn aba_routing(digits: &[u8]) -> bool {
    if digits.len() != 9 {
        return false;
    }
    let prefix = num(&digits[0..2]);
    if !matches!(prefix, 0..=12 | 21..=32 | 61..=72 | 80) || num(digits) == 0 {
        return false;
    }
    aba_check_digit(&digits[..8]) == digits[8]
}

/// The ABA check digit (ASCII) that completes eight routing digits.
pub fn aba_check_digit(first8: &[u8]) -> u8 {
    let w = [3u32, 7, 1];
    let sum: u32 = first8
        .iter()
        .enumerate()
        .map(|(i, d)| u32::from(d - b'0') * w[i % 3])
        .sum();
    b'0' + ((10 - sum % 10) % 10) as u8
}

/// IBAN length for a country code, for the countries in the SWIFT registry.
pub fn iban_length(country: &[u8]) -> Option<usize> {
    let &[a, b] = country else { return None };
    if !a.is_ascii_uppercase() || !b.is_ascii_uppercase() {
        return None;
    }
    match IBAN_LENGTH_BY_CODE[usize::from(a - b'A') * 26 + usize::from(b - b'A')] {
        0 => None,
        n => Some(usize::from(n)),
    }
}

/// [`IBAN_LENGTHS`] indexed by the two capitals (0: no such country), so
/// the scanner's many "two capitals, then digits" identifiers cost one load.
const IBAN_LENGTH_BY_CODE: [u8; 26 * 26] = {
    let mut table = [0; 26 * 26];
    let mut i = 0;
    while i < IBAN_LENGTHS.len() {
        let (cc, n) = IBAN_LENGTHS[i];
        table[(cc[0] - b'A') as usize * 26 + (cc[1] - b'A') as usize] = n as u8;
        i += 1;
    }
    table
};

/// IBAN lengths by country.
const IBAN_LENGTHS: &[(&[u8; 2], usize)] = &[
    (b"AD", 24),
    (b"AE", 23),
    (b"AL", 28),
    (b"AT", 20),
    (b"AZ", 28),
    (b"BA", 20),
    (b"BE", 16),
    (b"BG", 22),
    (b"BH", 22),
    (b"BI", 27),
    (b"BR", 29),
    (b"BY", 28),
    (b"CH", 21),
    (b"CR", 22),
    (b"CY", 28),
    (b"CZ", 24),
    (b"DE", 22),
    (b"DJ", 27),
    (b"DK", 18),
    (b"DO", 28),
    (b"EE", 20),
    (b"EG", 29),
    (b"ES", 24),
    (b"FI", 18),
    (b"FK", 18),
    (b"FO", 18),
    (b"FR", 27),
    (b"GB", 22),
    (b"GE", 22),
    (b"GI", 23),
    (b"GL", 18),
    (b"GR", 27),
    (b"GT", 28),
    (b"HN", 28),
    (b"HR", 21),
    (b"HU", 28),
    (b"IE", 22),
    (b"IL", 23),
    (b"IQ", 23),
    (b"IS", 26),
    (b"IT", 27),
    (b"JO", 30),
    (b"KW", 30),
    (b"KZ", 20),
    (b"LB", 28),
    (b"LC", 32),
    (b"LI", 21),
    (b"LT", 20),
    (b"LU", 20),
    (b"LV", 21),
    (b"LY", 25),
    (b"MC", 27),
    (b"MD", 24),
    (b"ME", 22),
    (b"MK", 19),
    (b"MN", 20),
    (b"MR", 27),
    (b"MT", 31),
    (b"MU", 30),
    (b"NI", 28),
    (b"NL", 18),
    (b"NO", 15),
    (b"OM", 23),
    (b"PK", 24),
    (b"PL", 28),
    (b"PS", 29),
    (b"PT", 25),
    (b"QA", 29),
    (b"RO", 24),
    (b"RS", 22),
    (b"RU", 33),
    (b"SA", 24),
    (b"SC", 31),
    (b"SD", 18),
    (b"SE", 24),
    (b"SI", 19),
    (b"SK", 24),
    (b"SM", 27),
    (b"SO", 23),
    (b"ST", 25),
    (b"SV", 28),
    (b"TL", 23),
    (b"TN", 24),
    (b"TR", 26),
    (b"UA", 29),
    (b"VA", 22),
    (b"VG", 24),
    (b"XK", 20),
    (b"YE", 30),
];

/// IBAN check: known country, its length, and ISO 7064 mod 97 = 1.
/// `iban` holds uppercase letters and digits only.
pub fn iban(iban: &[u8]) -> bool {
    if iban.len() < 15 || iban_length(&iban[..2]) != Some(iban.len()) {
        return false;
    }
    if !iban[2].is_ascii_digit() || !iban[3].is_ascii_digit() {
        return false;
    }
    let mut rem: u32 = 0;
    for &c in iban[4..].iter().chain(&iban[..4]) {
        match c {
            b'0'..=b'9' => rem = (rem * 10 + u32::from(c - b'0')) % 97,
            b'A'..=b'Z' => rem = (rem * 100 + u32::from(c - b'A' + 10)) % 97,
            _ => return false,
        }
    }
    rem == 1
}

/// Calling codes in use (ITU E.164), for plausibility of `+` numbers.
pub fn e164_country_code(digits: &[u8]) -> Option<usize> {
    const ONE: &[u8] = b"17";
    const TWO: &[u32] = &[
        20, 27, 30, 31, 32, 33, 34, 36, 39, 40, 41, 43, 44, 45, 46, 47, 48, 49, 51, 52, 53, 54, 55,
        56, 57, 58, 60, 61, 62, 63, 64, 65, 66, 81, 82, 84, 86, 90, 91, 92, 93, 94, 95, 98,
    ];
    const THREE_PREFIXES: &[u8] = b"2356789";
    let d0 = *digits.first()?;
    if ONE.contains(&d0) {
        return Some(1);
    }
    if digits.len() >= 2 && TWO.contains(&num(&digits[..2])) {
        return Some(2);
    }
    if digits.len() >= 3 && THREE_PREFIXES.contains(&d0) {
        return Some(3);
    }
    None
}

/// NANP: area code and exchange start with 2-9, and are not N11 service codes.
pub fn nanp(digits: &[u8]) -> bool {
    if digits.len() != 10 {
        return false;
    }
    let area_ok = digits[0] >= b'2' && !(digits[1] == b'1' && digits[2] == b'1');
    let exch_ok = digits[3] >= b'2' && !(digits[4] == b'1' && digits[5] == b'1');
    // 555-01xx is reserved for fiction; keep it (tests use it) but reject all-same digits.
    area_ok && exch_ok && !digits.iter().all(|&d| d == digits[0])
}

/// A calendar date with a plausible birth year (1900 to 2030).
pub fn date(year: u32, month: u32, day: u32) -> bool {
    if !(1900..=2030).contains(&year) || !(1..=12).contains(&month) || day == 0 {
        return false;
    }
    let leap = (year.is_multiple_of(4) && !year.is_multiple_of(100)) || year.is_multiple_of(400);
    let days = match month {
        2 if leap => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    };
    day <= days
}

/// Shannon entropy in bits per byte.
pub fn entropy(s: &[u8]) -> f64 {
    if s.is_empty() {
        return 0.0;
    }
    let mut counts = [0u32; 256];
    for &b in s {
        counts[b as usize] += 1;
    }
    let n = s.len() as f64;
    // Each distinct byte once, in the order met (not all 256 slots).
    let mut h = 0.0;
    for &b in s {
        let c = std::mem::take(&mut counts[usize::from(b)]);
        if c > 0 {
            let p = f64::from(c) / n;
            h -= p * p.log2();
        }
    }
    h
}

/// The decimal value of ASCII digits (up to 9 of them).
pub fn num(digits: &[u8]) -> u32 {
    digits.iter().fold(0u32, |a, d| {
        a.wrapping_mul(10).wrapping_add(u32::from(d - b'0'))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn iban_lengths_come_from_the_country_table() {
        assert!(
            IBAN_LENGTHS.windows(2).all(|w| w[0].0 < w[1].0),
            "sorted, no repeats"
        );
        for (cc, n) in IBAN_LENGTHS {
            assert_eq!(iban_length(cc.as_slice()), Some(*n));
        }
        for absent in [b"NN", b"AA", b"ZZ", b"XA"] {
            assert_eq!(iban_length(absent), None);
        }
        // Only two capitals index the table.
        for odd in [b"gb".as_slice(), b"G", b"GBR", b"", b"G1"] {
            assert_eq!(iban_length(odd), None, "{odd:?}");
        }
    }

    /// Appends the Luhn check digit to `body`.
    fn with_luhn(mut body: Vec<u8>) -> Vec<u8> {
        for d in b'0'..=b'9' {
            body.push(d);
            if luhn(&body) {
                return body;
            }
            body.pop();
        }
        unreachable!()
    }

    fn digits(s: &str) -> Vec<u8> {
        s.bytes().filter(u8::is_ascii_digit).collect()
    }

    #[test]
    fn known_values() {
        assert!(luhn(b"4111111111111111"));
        assert!(!luhn(b"4111111111111112"));
        assert_eq!(card_issuer(b"4111111111111111"), Some("visa"));
        assert_eq!(card_issuer(b"378282246310005"), Some("amex"));
        assert_eq!(card_issuer(b"5555555555554444"), Some("mastercard"));
        assert_eq!(card_issuer(b"6011111111111117"), Some("discover"));
        assert_eq!(card_issuer(b"1234567812345670"), None);
        assert!(ssn(&digits("123-45-6789")));
        assert!(!ssn(&digits("000-45-6789")));
        assert!(!ssn(&digits("666-45-6789")));
        assert!(!ssn(&digits("900-45-6789")));
        assert!(!ssn(&digits("123-00-6789")));
        assert!(!ssn(&digits("123-45-0000")));
        assert!(!ssn(&digits("078-05-1120")));
        assert!(itin(&digits("912-70-1234")));
        assert!(!itin(&digits("912-40-1234")));
        assert!(aba_routing(b"011000015"));
        assert!(aba_routing(b"021000021"));
        assert!(!aba_routing(b"021000022"));
        assert!(iban(b"GB82WEST12345698765432"));
        assert!(iban(b"DE89370400440532013000"));
        assert!(!iban(b"GB82WEST12345698765433"));
        assert!(!iban(b"XX82WEST12345698765432"));
        assert!(nanp(b"2025550143"));
        assert!(!nanp(b"1025550143"));
        assert!(!nanp(b"2115550143"));
        assert_eq!(e164_country_code(b"447911123456"), Some(2));
        assert!(date(1985, 2, 28) && !date(1985, 2, 29) && date(1984, 2, 29));
        assert!(entropy(b"aaaaaaaa") < 0.1 && entropy(b"aZ3kQ9pX") > 2.9);
    }

    proptest! {
        #[test]
        fn entropy_is_the_shannon_sum_over_byte_values(s in proptest::collection::vec(0u8..12, 0..300)) {
            let n = s.len() as f64;
            let want: f64 = (0..=255u8)
                .map(|b| s.iter().filter(|&&c| c == b).count() as f64 / n)
                .filter(|&p| p > 0.0)
                .map(|p| -p * p.log2())
                .sum();
            prop_assert!((entropy(&s) - want).abs() < 1e-9);
        }

        #[test]
        fn constructed_cards_pass_and_one_digit_mutations_fail(
            body in proptest::collection::vec(0u8..10, 14),
            pos in 0usize..16,
            delta in 1u8..10,
        ) {
            let mut card = vec![b'4'];
            card.extend(body.iter().map(|d| b'0' + d));
            let card = with_luhn(card);
            prop_assert_eq!(card.len(), 16);
            prop_assert!(luhn(&card));
            prop_assert_eq!(card_issuer(&card), Some("visa"));
            let mut bad = card.clone();
            bad[pos] = b'0' + (bad[pos] - b'0' + delta) % 10;
            prop_assert!(!luhn(&bad));
        }

        #[test]
        fn constructed_routing_numbers_pass_and_mutations_fail(
            prefix in prop_oneof![1u32..=12, 21u32..=32, 61u32..=72],
            mid in 0u32..1_000_000,
            pos in 0usize..9,
            delta in 1u8..10,
        ) {
            let mut d: Vec<u8> = format!("{prefix:02}{mid:06}").into_bytes();
            let w = [3u32, 7, 1];
            let sum: u32 = d.iter().enumerate().map(|(i, c)| u32::from(c - b'0') * w[i % 3]).sum();
            d.push(b'0' + ((10 - sum % 10) % 10) as u8);
            prop_assert!(aba_routing(&d));
            let mut bad = d.clone();
            bad[pos] = b'0' + (bad[pos] - b'0' + delta) % 10;
            // A change in a weight-1/3/7 position always moves the sum mod 10,
            // unless it leaves the Federal Reserve prefix range (also rejected).
            prop_assert!(!aba_routing(&bad));
        }

        #[test]
        fn constructed_ibans_pass_and_mutations_fail(
            bank in proptest::collection::vec(0u8..10, 18),
            pos in 4usize..22,
            delta in 1u8..10,
        ) {
            let bban: String = bank.iter().map(|d| char::from(b'0' + d)).collect();
            // Check digits: 98 - (BBAN + "DE00" as number) mod 97.
            let mut rem = 0u32;
            for c in bban.bytes().chain(*b"131400") {
                rem = (rem * 10 + u32::from(c - b'0')) % 97;
            }
            let iban_s = format!("DE{:02}{bban}", 98 - rem);
            prop_assert!(iban(iban_s.as_bytes()));
            let mut bad = iban_s.into_bytes();
            bad[pos] = b'0' + (bad[pos] - b'0' + delta) % 10;
            prop_assert!(!iban(&bad));
        }

        #[test]
        fn ssn_rules_hold_for_all_formatted_numbers(area in 0u32..1000, group in 0u32..100, serial in 0u32..10000) {
            let d = format!("{area:03}{group:02}{serial:04}").into_bytes();
            let expect = area != 0 && area != 666 && area < 900 && group != 0 && serial != 0
                && !matches!(num(&d), 78_051_120 | 219_099_999 | 457_555_462)
                && !d.iter().all(|&c| c == d[0]);
            prop_assert_eq!(ssn(&d), expect);
        }
    }
}
