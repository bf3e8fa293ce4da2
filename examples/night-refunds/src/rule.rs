//! The rule: no refund above 1000 is taken from 22:00 to 06:00 Berlin
//! time. Berlin keeps CET (UTC+1) in winter and CEST (UTC+2) from 01:00
//! UTC on the last Sunday of March to 01:00 UTC on the last Sunday of
//! October (Directive 2000/84/EC): calendar arithmetic Cedar has no words
//! for. Only a decision that would let the refund go ahead or ask for its
//! approval is reviewed; a denial stays the denial it was.

use greenlight_core::{Decision, Denial, DenialCode, Verdict};

/// The rule's name, as a decision's determining policy.
const RULE: &str = "night-refunds";
/// The largest refund taken at night.
const LIMIT: i64 = 1000;
/// When night starts and ends, in local hours.
const NIGHT: (u64, u64) = (22, 6);

/// The decision this module answers for `decision`, made at `now`.
pub fn review(decision: Decision, now: u64) -> Decision {
    let action = match &decision.verdict {
        Verdict::Allow(a) => &a.action,
        Verdict::ApprovalRequired(c) => &c.action,
        Verdict::Deny(_) | Verdict::StepUpRequired(_) => return decision,
    };
    if action.name != "payment.refund" {
        return decision;
    }
    let (hour, minute, zone) = berlin_clock(now);
    let message = match action
        .params
        .get("amount")
        .and_then(serde_json::Value::as_i64)
    {
        // A refund whose amount the rule cannot read is not let through
        // on the rule's silence.
        None => {
            format!("{action} is refused by rule `{RULE}`: the refund has no whole-number `amount`")
        }
        Some(amount) if amount <= LIMIT || (NIGHT.1..NIGHT.0).contains(&hour) => {
            return decision;
        }
        Some(_) => format!(
            "{action} is refused by rule `{RULE}`: refunds above {LIMIT} are not taken from \
             {:02}:00 to {:02}:00 Berlin time (it is {hour:02}:{minute:02} {zone})",
            NIGHT.0, NIGHT.1
        ),
    };
    Decision {
        verdict: Verdict::Deny(Denial::new(DenialCode::PolicyForbidden, message)),
        reasons: vec![RULE.to_owned()],
        policy_hash: decision.policy_hash,
    }
}

/// Days since 1970-01-01 of a civil date (proleptic Gregorian).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The civil year of a day since 1970-01-01.
fn year_of(days: i64) -> i64 {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    yoe + era * 400 + i64::from(month <= 2)
}

/// The day (since 1970-01-01) of the last Sunday of `month` (March or
/// October: 31 days) of `year`.
fn last_sunday(year: i64, month: i64) -> i64 {
    let last = days_from_civil(year, month, 31);
    // 1970-01-01 was a Thursday: day 0 is weekday 4 (Sunday = 0).
    last - (last + 4).rem_euclid(7)
}

/// Berlin's local hour and minute at `now` (Unix seconds), and its zone.
fn berlin_clock(now: u64) -> (u64, u64, &'static str) {
    let now = i64::try_from(now).unwrap_or(i64::MAX);
    let year = year_of(now.div_euclid(86_400));
    let summer_from = last_sunday(year, 3) * 86_400 + 3_600;
    let summer_until = last_sunday(year, 10) * 86_400 + 3_600;
    let (offset, zone) = if (summer_from..summer_until).contains(&now) {
        (7_200, "CEST")
    } else {
        (3_600, "CET")
    };
    let local = u64::try_from(now.saturating_add(offset)).unwrap_or(0);
    ((local % 86_400) / 3_600, (local % 3_600) / 60, zone)
}
