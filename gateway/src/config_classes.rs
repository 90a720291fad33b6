//! The traffic classes' part of the configuration (docs/gateway-decisions.md, "Traffic classes";
//! every key in `configs/README.md`): the top-level `classes:` rules, validated into
//! [`ClassRules`] (the administrator's rules, in file order, before the built-in ones), and each
//! peer's `egress_rate` and `outer_dscp`, validated into a [`PeerEgress`]. Errors name the file,
//! the line, the field and the problem, like the rest of the configuration.

use std::fmt;
use std::net::IpAddr;
use std::path::Path;

use serde::Deserialize;
use serde_saphyr::Spanned;

use crate::classes::rules::{ClassRules, Rule, protocol};
use crate::classes::{ClassId, PeerEgress};
use crate::config::{ConfigError, parse_cidr};

/// The slowest `egress_rate`: below it one full-size packet takes longer than any delay target.
pub const MIN_EGRESS_BPS: u64 = 64_000;
/// The fastest `egress_rate`, well above what one gateway seals.
pub const MAX_EGRESS_BPS: u64 = 400_000_000_000;

/// A number, or a name or text to parse (YAML scalars as the user wrote them).
#[derive(Debug, Clone)]
pub enum NumberOrText {
    /// An integer.
    Number(i64),
    /// Anything else.
    Text(String),
}

impl<'de> Deserialize<'de> for NumberOrText {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(NumberOrTextVisitor)
    }
}

struct NumberOrTextVisitor;

impl serde::de::Visitor<'_> for NumberOrTextVisitor {
    type Value = NumberOrText;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a number or a name")
    }

    fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Self::Value, E> {
        Ok(NumberOrText::Number(v))
    }

    fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Self::Value, E> {
        // Beyond i64: out of every range this is used for, and said so by the validation.
        Ok(NumberOrText::Number(i64::try_from(v).unwrap_or(i64::MAX)))
    }

    fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Self::Value, E> {
        Ok(NumberOrText::Text(v.to_string()))
    }

    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(NumberOrText::Text(v.to_owned()))
    }
}

impl fmt::Display for NumberOrText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Number(n) => write!(f, "{n}"),
            Self::Text(t) => write!(f, "{t:?}"),
        }
    }
}

/// One entry of the top-level `classes:`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClassConfig {
    /// `telemonitoring`, `telemedicine`, `imaging` or `default`.
    pub name: Spanned<String>,
    /// What falls into it.
    #[serde(rename = "match")]
    pub matches: Spanned<MatchConfig>,
}

/// `classes[].match`: every field set must match (a list: any of its elements).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MatchConfig {
    /// `tcp`, `udp`, `icmp`, `icmpv6`, `any` or 0–255.
    pub protocol: Option<Spanned<NumberOrText>>,
    /// Ports (source or destination): numbers or `"a-b"` ranges.
    pub ports: Option<Vec<Spanned<NumberOrText>>>,
    /// DSCP names (`EF`, `CS0`–`CS7`, `AF11`–`AF43`, `VA`) or 0–63.
    pub dscp: Option<Vec<Spanned<NumberOrText>>>,
    /// Prefixes (source or destination), host bits zero.
    pub cidr: Option<Vec<Spanned<String>>>,
}

fn fail<T>(
    path: &Path,
    line: u64,
    field: &str,
    problem: impl fmt::Display,
) -> Result<T, ConfigError> {
    Err(ConfigError(format!(
        "{}:{line}: {field}: {problem}",
        path.display()
    )))
}

/// Validates the top-level `classes:` into the site's rules: these, in order, then the built-in.
pub fn validate_rules(path: &Path, classes: &[ClassConfig]) -> Result<ClassRules, ConfigError> {
    let mut rules = Vec::with_capacity(classes.len());
    for (n, c) in classes.iter().enumerate() {
        let prefix = format!("classes[{n}] ({})", c.name.value);
        let Some(class) = ClassId::from_name(&c.name.value) else {
            let names: Vec<_> = ClassId::ALL.iter().map(|c| c.name()).collect();
            let line = c.name.referenced.line();
            let problem = format!("must be one of {}", names.join(", "));
            return fail(path, line, &format!("classes[{n}].name"), problem);
        };
        rules.push(validate_match(path, &prefix, class, &c.matches)?);
    }
    Ok(ClassRules::with_admin_rules(rules))
}

fn validate_match(
    path: &Path,
    prefix: &str,
    class: ClassId,
    m: &Spanned<MatchConfig>,
) -> Result<Rule, ConfigError> {
    let line = m.referenced.line();
    let field = |f: &str| format!("{prefix}.match.{f}");
    let v = &m.value;
    if v.protocol.is_none() && v.ports.is_none() && v.dscp.is_none() && v.cidr.is_none() {
        let problem = "must set at least one of protocol, ports, dscp, cidr";
        return fail(path, line, &format!("{prefix}.match"), problem);
    }
    let mut rule = Rule::any(class);
    if let Some(p) = &v.protocol {
        rule.protocol = match protocol_number(&p.value) {
            Some(number) => number,
            None => {
                let problem =
                    format_args!("{} is not tcp, udp, icmp, icmpv6, any or 0-255", p.value);
                return fail(path, p.referenced.line(), &field("protocol"), problem);
            }
        };
    }
    if let Some(ports) = &v.ports {
        let f = field("ports");
        if ports.is_empty() {
            return fail(path, line, &f, "must list at least one port or range");
        }
        if rule
            .protocol
            .is_some_and(|p| p != protocol::TCP && p != protocol::UDP)
        {
            return fail(
                path,
                line,
                &f,
                "only TCP and UDP have ports (protocol: tcp, udp or any)",
            );
        }
        for p in ports {
            match port_range(&p.value) {
                Ok(r) => rule.ports.push(r),
                Err(problem) => return fail(path, p.referenced.line(), &f, problem),
            }
        }
    }
    if let Some(dscp) = &v.dscp {
        let f = field("dscp");
        if dscp.is_empty() {
            return fail(path, line, &f, "must list at least one DSCP");
        }
        for d in dscp {
            match dscp_value(&d.value) {
                Some(code) => rule.dscp.push(code),
                None => {
                    let problem = format_args!(
                        "{} is not 0-63 or a name: EF, VA, CS0-CS7, AF11-AF13, AF21-AF23, AF31-AF33, AF41-AF43",
                        d.value
                    );
                    return fail(path, d.referenced.line(), &f, problem);
                }
            }
        }
    }
    if let Some(cidr) = &v.cidr {
        let f = field("cidr");
        if cidr.is_empty() {
            return fail(path, line, &f, "must list at least one prefix");
        }
        for c in cidr {
            match host_bits_zero(&c.value) {
                Ok(net) => rule.cidr.push(net),
                Err(problem) => return fail(path, c.referenced.line(), &f, problem),
            }
        }
    }
    Ok(rule)
}

/// `Some(None)` for `any`, `Some(Some(n))` for a protocol, `None` if not one.
fn protocol_number(p: &NumberOrText) -> Option<Option<u8>> {
    match p {
        NumberOrText::Number(n) => u8::try_from(*n).ok().map(Some),
        NumberOrText::Text(t) => match t.to_ascii_lowercase().as_str() {
            "any" => Some(None),
            "tcp" => Some(Some(protocol::TCP)),
            "udp" => Some(Some(protocol::UDP)),
            "icmp" => Some(Some(protocol::ICMP)),
            "icmpv6" => Some(Some(protocol::ICMPV6)),
            _ => None,
        },
    }
}

/// A port (1–65535) or a range `"a-b"` with a ≤ b.
fn port_range(p: &NumberOrText) -> Result<std::ops::RangeInclusive<u16>, String> {
    let port = |n: i64| u16::try_from(n).ok().filter(|&p| p > 0);
    let bad = || format!("{p} is not a port 1-65535 or a range \"a-b\"");
    let (lo, hi) = match p {
        NumberOrText::Number(n) => {
            let n = port(*n).ok_or_else(bad)?;
            (n, n)
        }
        NumberOrText::Text(t) => {
            let one = |s: &str| s.trim().parse::<i64>().ok().and_then(port);
            match t.split_once('-') {
                Some((a, b)) => (one(a).ok_or_else(bad)?, one(b).ok_or_else(bad)?),
                None => {
                    let n = one(t).ok_or_else(bad)?;
                    (n, n)
                }
            }
        }
    };
    if lo > hi {
        return Err(format!("{p}: the range's first port is above its last"));
    }
    Ok(lo..=hi)
}

/// A DSCP name (RFC 2474 class selectors, RFC 2597 AF, RFC 3246 EF, RFC 5865 VOICE-ADMIT; any
/// case) or 0–63.
fn dscp_value(d: &NumberOrText) -> Option<u8> {
    let name = match d {
        NumberOrText::Number(n) => return u8::try_from(*n).ok().filter(|&c| c < 64),
        NumberOrText::Text(t) => t.to_ascii_uppercase(),
    };
    let digit = |b: u8, range: std::ops::RangeInclusive<u8>| {
        let v = b.wrapping_sub(b'0');
        range.contains(&v).then_some(v)
    };
    match name.as_bytes() {
        b"EF" => Some(46),
        b"VA" => Some(44),
        [b'C', b'S', n] => Some(digit(*n, 0..=7)? * 8),
        [b'A', b'F', x, y] => Some(digit(*x, 1..=4)? * 8 + digit(*y, 1..=3)? * 2),
        _ => None,
    }
}

/// A prefix whose host bits are zero (so what it matches is what it says).
fn host_bits_zero(text: &str) -> Result<(IpAddr, u8), String> {
    let Some((ip, len)) = parse_cidr(text) else {
        return Err(format!("{text:?} is not IP/prefix"));
    };
    let masked = crate::classes::rules::network(ip, len);
    if masked != ip {
        return Err(format!(
            "{text:?} has host bits set: did you mean {masked}/{len}?"
        ));
    }
    Ok((ip, len))
}

/// Validates a peer's `egress_rate` and `outer_dscp` (`prefix`: `peers[n] (name).`).
pub fn validate_egress(
    path: &Path,
    prefix: &str,
    rate: Option<&Spanned<NumberOrText>>,
    outer_dscp: bool,
) -> Result<PeerEgress, ConfigError> {
    let rate_bps = match rate {
        None => None,
        Some(r) => match parse_rate(&r.value) {
            Ok(bps) => Some(bps),
            Err(problem) => {
                return fail(
                    path,
                    r.referenced.line(),
                    &format!("{prefix}egress_rate"),
                    problem,
                );
            }
        },
    };
    Ok(PeerEgress {
        rate_bps,
        outer_dscp,
    })
}

/// `200mbit`, `1.5gbit`, `512kbit` (1000-based) in bits per second, within
/// [`MIN_EGRESS_BPS`]..=[`MAX_EGRESS_BPS`].
pub fn parse_rate(r: &NumberOrText) -> Result<u64, String> {
    let text = match r {
        NumberOrText::Number(n) => {
            return Err(format!(
                "{n} needs a unit: kbit, mbit or gbit (e.g. {n}mbit)"
            ));
        }
        NumberOrText::Text(t) => t.trim().to_ascii_lowercase(),
    };
    let units = [
        ("kbit", 1_000u128),
        ("mbit", 1_000_000),
        ("gbit", 1_000_000_000),
    ];
    let Some((number, unit)) = units
        .iter()
        .find_map(|(name, unit)| Some((text.strip_suffix(name)?.trim_end(), *unit)))
    else {
        return Err(format!(
            "{r} needs a unit: kbit, mbit or gbit (e.g. 200mbit)"
        ));
    };
    let (whole, fraction) = number.split_once('.').unwrap_or((number, "0"));
    // 18 digits: the largest whole part times a unit, and any fraction's scale, fit in a u128.
    let digits = |s: &str| !s.is_empty() && s.len() <= 18 && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(whole) || !digits(fraction) {
        return Err(format!(
            "{r} is not a number and a unit (e.g. 200mbit, 1.5gbit)"
        ));
    }
    let parse = |s: &str| s.parse::<u128>().unwrap_or(0);
    let scale = 10u128.pow(u32::try_from(fraction.len()).unwrap_or(0));
    let bps = parse(whole) * unit + parse(fraction) * unit / scale;
    if bps == 0 {
        return Err(format!("{r} must be more than 0"));
    }
    if bps < u128::from(MIN_EGRESS_BPS) {
        return Err(format!("{r} is below the least, 64kbit"));
    }
    if bps > u128::from(MAX_EGRESS_BPS) {
        return Err(format!("{r} is above the most, 400gbit"));
    }
    u64::try_from(bps).map_err(|_| format!("{r} is above the most, 400gbit"))
}

#[cfg(test)]
#[path = "config_classes_tests.rs"]
mod tests;
