//! Synthetic, deterministic account data for sandbox LoginIds (docs/flinks-wire.md, "Sandbox
//! bank").
//!
//! Everything is drawn from a ChaCha stream seeded with the LoginId, so the same LoginId always
//! yields the same accounts, balances and transactions. Transactions cover the 365 days before
//! the as-of date; a 90-day request is a suffix of the same history, so balances agree whatever
//! window a client asks for.

use chrono::{Datelike, Days, NaiveDate};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use sha2::{Digest as _, Sha256};
use uuid::Uuid;

use crate::ids::LoginId;

/// Money in cents: exact arithmetic; rendered as a decimal number on the wire.
pub type Cents = i64;

/// The longest history generated.
pub const HISTORY_DAYS: u32 = 365;

/// Where a holder lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Address {
    pub civic_address: String,
    pub city: &'static str,
    pub province: &'static str,
    pub postal_code: &'static str,
    pub po_box: Option<String>,
    pub country: &'static str,
}

/// The account holder (KYC).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    pub name: String,
    pub address: Address,
    pub email: String,
    pub phone_number: String,
}

/// How balances move: operations accounts hold money, credit accounts owe it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Category {
    Operations,
    Credits,
    Products,
}

impl Category {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Operations => "Operations",
            Self::Credits => "Credits",
            Self::Products => "Products",
        }
    }
}

/// One transaction. `balance` is the account balance right after it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transaction {
    pub id: Uuid,
    pub date: NaiveDate,
    pub description: String,
    pub debit: Option<Cents>,
    pub credit: Option<Cents>,
    pub balance: Cents,
}

/// One account as the sandbox bank knows it.
#[derive(Debug, Clone, PartialEq)]
pub struct Account {
    pub id: Uuid,
    pub title: &'static str,
    /// `Type` on the wire: Chequing, Savings, CreditCard, LineOfCredit, RRSP.
    pub kind: &'static str,
    pub category: Category,
    pub currency: &'static str,
    pub account_number: String,
    pub last_four_digits: Option<String>,
    pub transit_number: String,
    pub institution_number: &'static str,
    pub overdraft_limit: Option<Cents>,
    /// For credit accounts, the amount owed.
    pub current: Cents,
    pub available: Cents,
    pub limit: Option<Cents>,
    pub eft_eligible_ratio: f64,
    pub etransfer_eligible_ratio: f64,
    pub holder: Holder,
    /// Most recent first, as Flinks lists them.
    pub transactions: Vec<Transaction>,
}

impl Account {
    /// The balance after applying a transaction to `before`.
    pub fn apply(category: Category, before: Cents, debit: Cents, credit: Cents) -> Cents {
        match category {
            // Credit accounts track what is owed: spending raises it, payments lower it.
            Category::Credits => before + debit - credit,
            Category::Operations | Category::Products => before + credit - debit,
        }
    }

    /// The transactions dated within the last `days` days up to `as_of` (inclusive).
    pub fn transactions_within(&self, as_of: NaiveDate, days: u32) -> &[Transaction] {
        let first = as_of
            .checked_sub_days(Days::new(u64::from(days.saturating_sub(1))))
            .unwrap_or(NaiveDate::MIN);
        let end = self
            .transactions
            .iter()
            .position(|t| t.date < first)
            .unwrap_or(self.transactions.len());
        &self.transactions[..end]
    }
}

const FIRST_NAMES: &[&str] = &[
    "Alex", "Camille", "Jordan", "Émilie", "Samuel", "Priya", "Olivier", "Mei", "Noah", "Chloé",
];
const LAST_NAMES: &[&str] = &[
    "Tremblay", "Gagnon", "Roy", "Singh", "Chen", "Martin", "Bouchard", "Wilson", "Côté", "Nguyen",
];
const STREETS: &[&str] = &[
    "Park Avenue",
    "Rue Sainte-Catherine",
    "King Street West",
    "Maple Drive",
    "Boulevard René-Lévesque",
    "Granville Street",
];
/// (city, province, postal code)
const CITIES: &[(&str, &str, &str)] = &[
    ("Montreal", "QC", "H2X 1Y4"),
    ("Toronto", "ON", "M5V 2T6"),
    ("Vancouver", "BC", "V6B 1A1"),
    ("Calgary", "AB", "T2P 1J9"),
    ("Ottawa", "ON", "K1P 5G4"),
    ("Quebec City", "QC", "G1R 4P5"),
];

/// What a recurring or random transaction looks like.
struct Pattern {
    description: &'static str,
    /// Money in (true) or out.
    inflow: bool,
    min: Cents,
    max: Cents,
}

const EVERYDAY_SPENDING: &[Pattern] = &[
    Pattern {
        description: "IGA #123 MONTREAL",
        inflow: false,
        min: 2_500,
        max: 18_000,
    },
    Pattern {
        description: "METRO ETS 4521",
        inflow: false,
        min: 1_500,
        max: 12_000,
    },
    Pattern {
        description: "TIM HORTONS #2211",
        inflow: false,
        min: 250,
        max: 1_800,
    },
    Pattern {
        description: "SAQ 23003",
        inflow: false,
        min: 1_800,
        max: 9_000,
    },
    Pattern {
        description: "PETRO-CANADA 04218",
        inflow: false,
        min: 3_000,
        max: 9_500,
    },
    Pattern {
        description: "AMAZON.CA MKTPLACE",
        inflow: false,
        min: 1_200,
        max: 15_000,
    },
    Pattern {
        description: "INTERAC E-TRANSFER RECEIVED",
        inflow: true,
        min: 2_000,
        max: 30_000,
    },
    Pattern {
        description: "INTERAC E-TRANSFER SENT",
        inflow: false,
        min: 2_000,
        max: 25_000,
    },
    Pattern {
        description: "UBER CANADA/UBERTRIP",
        inflow: false,
        min: 900,
        max: 4_500,
    },
    Pattern {
        description: "NETFLIX.COM",
        inflow: false,
        min: 1_699,
        max: 2_099,
    },
];

/// Generates a LoginId's accounts as of `as_of`.
pub fn accounts_for(login_id: LoginId, as_of: NaiveDate) -> Vec<Account> {
    let mut rng = ChaCha8Rng::from_seed(Sha256::digest(login_id.as_uuid().as_bytes()).into());
    let holder = holder(&mut rng);
    let transit_number = format!("{:05}", rng.random_range(10_000..99_999));

    let mut kinds = vec![AccountKind::Chequing];
    for (kind, probability) in [
        (AccountKind::Savings, 0.7),
        (AccountKind::CreditCard, 0.8),
        (AccountKind::LineOfCredit, 0.35),
        (AccountKind::Rrsp, 0.4),
        (AccountKind::UsdChequing, 0.25),
    ] {
        if rng.random_bool(probability) {
            kinds.push(kind);
        }
    }
    kinds
        .into_iter()
        .map(|kind| account(&mut rng, kind, &holder, &transit_number, as_of))
        .collect()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AccountKind {
    Chequing,
    Savings,
    CreditCard,
    LineOfCredit,
    Rrsp,
    UsdChequing,
}

impl AccountKind {
    fn title(self) -> &'static str {
        match self {
            Self::Chequing => "Chequing Account",
            Self::Savings => "High Interest Savings",
            Self::CreditCard => "Flinks Capital Visa",
            Self::LineOfCredit => "Personal Line of Credit",
            Self::Rrsp => "RRSP Savings",
            Self::UsdChequing => "US Dollar Account",
        }
    }

    fn wire_type(self) -> &'static str {
        match self {
            Self::Chequing | Self::UsdChequing => "Chequing",
            Self::Savings => "Savings",
            Self::CreditCard => "CreditCard",
            Self::LineOfCredit => "LineOfCredit",
            Self::Rrsp => "RRSP",
        }
    }

    fn category(self) -> Category {
        match self {
            Self::Chequing | Self::Savings | Self::UsdChequing => Category::Operations,
            Self::CreditCard | Self::LineOfCredit => Category::Credits,
            Self::Rrsp => Category::Products,
        }
    }
}

fn pick<'a, T>(rng: &mut ChaCha8Rng, items: &'a [T]) -> &'a T {
    &items[rng.random_range(0..items.len())]
}

fn uuid_from(rng: &mut ChaCha8Rng) -> Uuid {
    uuid::Builder::from_random_bytes(rng.random()).into_uuid()
}

fn holder(rng: &mut ChaCha8Rng) -> Holder {
    let first = *pick(rng, FIRST_NAMES);
    let last = *pick(rng, LAST_NAMES);
    let (city, province, postal_code) = *pick(rng, CITIES);
    let ascii_first: String = first
        .chars()
        .map(|c| match c {
            'É' => 'E',
            'é' => 'e',
            'ô' => 'o',
            other => other,
        })
        .collect();
    let ascii_last: String = last.replace('ô', "o");
    Holder {
        name: format!("{first} {last}"),
        address: Address {
            civic_address: format!("{} {}", rng.random_range(1..2_500), pick(rng, STREETS)),
            city,
            province,
            postal_code,
            po_box: None,
            country: "CA",
        },
        email: format!(
            "{}.{}@example.com",
            ascii_first.to_lowercase(),
            ascii_last.to_lowercase()
        ),
        phone_number: format!(
            "+1 {}-{:03}-{:04}",
            pick(rng, &["514", "416", "604", "403", "613", "418"]),
            rng.random_range(200..999),
            rng.random_range(0..9_999)
        ),
    }
}

fn account(
    rng: &mut ChaCha8Rng,
    kind: AccountKind,
    holder: &Holder,
    transit_number: &str,
    as_of: NaiveDate,
) -> Account {
    let id = uuid_from(rng);
    let account_number = format!("{:07}", rng.random_range(1_000_000..9_999_999));
    let category = kind.category();
    let (limit, overdraft_limit, opening) = match kind {
        AccountKind::Chequing => (
            None,
            Some(rng.random_range(1..6) * 10_000),
            rng.random_range(150_000..600_000),
        ),
        AccountKind::UsdChequing => (None, None, rng.random_range(20_000..300_000)),
        AccountKind::Savings => (None, None, rng.random_range(500_000..3_000_000)),
        AccountKind::CreditCard => {
            let limit = rng.random_range(2..15) * 100_000;
            (Some(limit), None, rng.random_range(0..limit / 4))
        }
        AccountKind::LineOfCredit => {
            let limit = rng.random_range(5..30) * 100_000;
            (Some(limit), None, rng.random_range(0..limit / 2))
        }
        AccountKind::Rrsp => (None, None, rng.random_range(1_000_000..8_000_000)),
    };
    let transactions = history(rng, kind, opening, limit, overdraft_limit, as_of);
    let current = transactions.first().map_or(opening, |t| t.balance);
    let available = match (category, limit) {
        (Category::Credits, Some(limit)) => limit - current,
        _ => current + overdraft_limit.unwrap_or(0),
    };
    let last_four = account_number[account_number.len() - 4..].to_owned();
    Account {
        id,
        title: kind.title(),
        kind: kind.wire_type(),
        category,
        currency: if kind == AccountKind::UsdChequing {
            "USD"
        } else {
            "CAD"
        },
        account_number: if kind == AccountKind::CreditCard {
            format!("************{last_four}")
        } else {
            account_number.clone()
        },
        last_four_digits: (kind == AccountKind::CreditCard).then_some(last_four),
        transit_number: transit_number.to_owned(),
        institution_number: "777",
        overdraft_limit,
        current,
        available,
        limit,
        eft_eligible_ratio: if category == Category::Operations {
            1.0
        } else {
            0.0
        },
        etransfer_eligible_ratio: if category == Category::Operations {
            1.0
        } else {
            0.0
        },
        holder: holder.clone(),
        transactions,
    }
}

/// A year of transactions, oldest first while generating, returned most recent first.
fn history(
    rng: &mut ChaCha8Rng,
    kind: AccountKind,
    opening: Cents,
    limit: Option<Cents>,
    overdraft_limit: Option<Cents>,
    as_of: NaiveDate,
) -> Vec<Transaction> {
    let category = kind.category();
    let start = as_of
        .checked_sub_days(Days::new(u64::from(HISTORY_DAYS - 1)))
        .unwrap_or(as_of);
    let payday_offset = rng.random_range(0..14_u64);
    let rent_day = rng.random_range(1..5_u32);
    let salary = rng.random_range(140_000..380_000);
    let rent = rng.random_range(90_000..210_000);
    let mut balance = opening;
    let mut out = Vec::new();
    for offset in 0..u64::from(HISTORY_DAYS) {
        let Some(date) = start.checked_add_days(Days::new(offset)) else {
            break;
        };
        let mut todays: Vec<(String, bool, Cents)> = Vec::new();
        match kind {
            AccountKind::Chequing => {
                if offset % 14 == payday_offset {
                    todays.push(("PAYROLL DEPOSIT - ACME INC".to_owned(), true, salary));
                }
                if date.day() == rent_day {
                    todays.push(("RENT PAYMENT - PROPRIETE GESTION".to_owned(), false, rent));
                }
                if date.day() == 15 {
                    todays.push((
                        "HYDRO-QUEBEC BILL PAYMENT".to_owned(),
                        false,
                        rng.random_range(6_000..18_000),
                    ));
                }
                if rng.random_bool(0.55) {
                    let pattern = pick(rng, EVERYDAY_SPENDING);
                    todays.push((
                        pattern.description.to_owned(),
                        pattern.inflow,
                        rng.random_range(pattern.min..=pattern.max),
                    ));
                }
            }
            AccountKind::UsdChequing => {
                if rng.random_bool(0.08) {
                    let inflow = rng.random_bool(0.5);
                    let description = if inflow {
                        "WIRE TRANSFER IN USD"
                    } else {
                        "US PURCHASE - ONLINE"
                    };
                    todays.push((
                        description.to_owned(),
                        inflow,
                        rng.random_range(2_000..40_000),
                    ));
                }
            }
            AccountKind::Savings => {
                if date.day() == 1 {
                    todays.push((
                        "TRANSFER FROM CHEQUING".to_owned(),
                        true,
                        rng.random_range(10_000..60_000),
                    ));
                }
                if date.day() == 28 {
                    todays.push(("INTEREST".to_owned(), true, (balance / 1_000).max(1)));
                }
            }
            AccountKind::CreditCard => {
                if rng.random_bool(0.6) {
                    let pattern = pick(rng, &EVERYDAY_SPENDING[..6]);
                    todays.push((
                        pattern.description.to_owned(),
                        false,
                        rng.random_range(pattern.min..=pattern.max),
                    ));
                }
                if date.day() == 20 && balance > 0 {
                    todays.push(("PAYMENT - THANK YOU".to_owned(), true, balance));
                }
            }
            AccountKind::LineOfCredit => {
                if date.day() == 10 && balance > 0 {
                    todays.push((
                        "LOC PAYMENT".to_owned(),
                        true,
                        (balance / 10).max(5_000).min(balance),
                    ));
                }
                if rng.random_bool(0.02) {
                    todays.push((
                        "LOC ADVANCE TO CHEQUING".to_owned(),
                        false,
                        rng.random_range(20_000..150_000),
                    ));
                }
            }
            AccountKind::Rrsp => {
                if date.day() == 5 {
                    todays.push((
                        "RRSP CONTRIBUTION".to_owned(),
                        true,
                        rng.random_range(10_000..50_000),
                    ));
                }
            }
        }
        for (description, inflow, amount) in todays {
            let (debit, credit) = if inflow { (0, amount) } else { (amount, 0) };
            let after = Account::apply(category, balance, debit, credit);
            // The bank declines what would break a limit: no transaction, no balance change.
            let within_limits = match category {
                Category::Credits => after <= limit.unwrap_or(Cents::MAX),
                _ => after >= -overdraft_limit.unwrap_or(0),
            };
            if !within_limits || amount <= 0 {
                continue;
            }
            balance = after;
            out.push(Transaction {
                id: uuid_from(rng),
                date,
                description,
                debit: (debit > 0).then_some(debit),
                credit: (credit > 0).then_some(credit),
                balance,
            });
        }
    }
    out.reverse();
    out
}

/// Renders cents as the decimal number Flinks sends (`1234.5`).
pub fn to_decimal(cents: Cents) -> f64 {
    cents as f64 / 100.0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn as_of() -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 1, 21).unwrap()
    }

    #[test]
    fn the_same_login_id_always_yields_the_same_accounts() {
        let login = LoginId::new_random();
        assert_eq!(accounts_for(login, as_of()), accounts_for(login, as_of()));
        assert_ne!(
            accounts_for(login, as_of()),
            accounts_for(LoginId::new_random(), as_of())
        );
    }

    #[test]
    fn running_balances_add_up_and_dates_are_in_the_year() {
        for _ in 0..20 {
            for account in accounts_for(LoginId::new_random(), as_of()) {
                let chronological: Vec<&Transaction> = account.transactions.iter().rev().collect();
                for pair in chronological.windows(2) {
                    let expected = Account::apply(
                        account.category,
                        pair[0].balance,
                        pair[1].debit.unwrap_or(0),
                        pair[1].credit.unwrap_or(0),
                    );
                    assert_eq!(pair[1].balance, expected, "{} {:?}", account.kind, pair[1]);
                    assert!(pair[0].date <= pair[1].date);
                }
                if let Some(latest) = account.transactions.first() {
                    assert_eq!(latest.balance, account.current);
                    assert!(latest.date <= as_of());
                }
                for t in &account.transactions {
                    assert!(t.debit.is_some() != t.credit.is_some(), "{t:?}");
                    assert!(t.date > as_of() - Days::new(365));
                }
            }
        }
    }

    #[test]
    fn every_login_has_a_chequing_account_with_regular_income() {
        let accounts = accounts_for(LoginId::new_random(), as_of());
        let chequing = &accounts[0];
        assert_eq!(
            (chequing.kind, chequing.category, chequing.currency),
            ("Chequing", Category::Operations, "CAD")
        );
        let last_90 = chequing.transactions_within(as_of(), 90);
        assert!(
            last_90
                .iter()
                .filter(|t| t.description.starts_with("PAYROLL"))
                .count()
                >= 6
        );
        assert!(last_90.len() < chequing.transactions.len());
        assert!(last_90.iter().all(|t| t.date > as_of() - Days::new(90)));
    }

    #[test]
    fn account_ids_are_distinct_v4_uuids() {
        let accounts = accounts_for(LoginId::new_random(), as_of());
        let ids: std::collections::HashSet<Uuid> = accounts.iter().map(|a| a.id).collect();
        assert_eq!(ids.len(), accounts.len());
        assert!(accounts.iter().all(|a| a.id.get_version_num() == 4));
    }

    #[test]
    fn decimals_render_as_flinks_writes_them() {
        assert_eq!(serde_json_like(to_decimal(123_445)), "1234.45");
        assert_eq!(serde_json_like(to_decimal(-50)), "-0.5");
    }

    fn serde_json_like(value: f64) -> String {
        format!("{value}")
    }
}
