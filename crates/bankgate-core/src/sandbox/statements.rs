//! Monthly PDF statements for sandbox accounts (`POST /GetStatements`, docs/flinks-wire.md,
//! "Endpoint rulings").
//!
//! A statement covers one complete calendar month and is drawn from the same synthetic
//! transactions the account endpoints return, so balances agree everywhere. The PDF is written
//! directly with `pdf-writer`: the standard Type1 Helvetica faces (nothing embedded), text in
//! WinAnsiEncoding so accented names survive, and nothing read from the wall clock, so the same
//! account and period always give byte-identical files.

use std::fmt;
use std::str::FromStr;

use chrono::{Datelike, Months, NaiveDate};
use pdf_writer::{Content, Date, Name, Pdf, Rect, Ref, Str, TextStr};
use sha2::{Digest as _, Sha256};
use uuid::Uuid;

use super::accounts::{Account, Category, Cents, Transaction};

/// `NumberOfStatements`: how many monthly statements to return per account.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum StatementCount {
    /// The last complete month (the Flinks default).
    #[default]
    MostRecent,
    Months3,
    Months12,
}

impl StatementCount {
    /// How many complete months this asks for.
    pub fn months(self) -> u32 {
        match self {
            Self::MostRecent => 1,
            Self::Months3 => 3,
            Self::Months12 => 12,
        }
    }

    /// The value as Flinks spells it on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::MostRecent => "MostRecent",
            Self::Months3 => "Months3",
            Self::Months12 => "Months12",
        }
    }
}

impl FromStr for StatementCount {
    type Err = String;

    /// `MostRecent`, `Months3` or `Months12`, in any case.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        [Self::MostRecent, Self::Months3, Self::Months12]
            .into_iter()
            .find(|count| count.as_str().eq_ignore_ascii_case(s))
            .ok_or_else(|| {
                format!("unknown NumberOfStatements {s:?}; use MostRecent, Months3 or Months12")
            })
    }
}

impl fmt::Display for StatementCount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One monthly statement, rendered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Statement {
    /// `UniqueId` on the wire; the same for the same account and month.
    pub unique_id: Uuid,
    pub period_start: NaiveDate,
    pub period_end: NaiveDate,
    /// A complete PDF file.
    pub pdf: Vec<u8>,
}

/// The statements of `account` for the complete calendar months before the month of `as_of`,
/// most recent first: as of 2026-01-21, `Months3` covers December, November and October 2025.
pub fn statements_for(
    institution_name: &str,
    account: &Account,
    as_of: NaiveDate,
    count: StatementCount,
) -> Vec<Statement> {
    // The current month is still open, so the newest statement is for the month before it.
    let this_month = as_of.with_day(1).unwrap_or(as_of);
    (1..=count.months())
        .map_while(|back| {
            let start = this_month.checked_sub_months(Months::new(back))?;
            let end = start.checked_add_months(Months::new(1))?.pred_opt()?;
            Some((start, end))
        })
        .map(|(start, end)| {
            let unique_id = statement_id(account.id, start);
            let period = Period::of(account, start, end);
            Statement {
                unique_id,
                period_start: start,
                period_end: end,
                pdf: render(institution_name, account, &period, unique_id),
            }
        })
        .collect()
}

/// A v4-shaped id derived from the account and month, so a client that fetches the same
/// statement twice sees the same `UniqueId`.
fn statement_id(account: Uuid, period_start: NaiveDate) -> Uuid {
    let mut hasher = Sha256::new();
    // Domain separation: these bytes must not collide with other ids hashed from account ids.
    hasher.update(b"bankgate statement\0");
    hasher.update(account.as_bytes());
    hasher.update(period_start.to_string().as_bytes());
    let digest = hasher.finalize();
    let mut bytes = [0_u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    uuid::Builder::from_random_bytes(bytes).into_uuid()
}

/// How a transaction moves the balance. `Account::apply` is linear in the balance before, so
/// applying to zero isolates the transaction's own effect.
fn effect(category: Category, transaction: &Transaction) -> Cents {
    Account::apply(
        category,
        0,
        transaction.debit.unwrap_or(0),
        transaction.credit.unwrap_or(0),
    )
}

/// One month of an account, with the figures a statement prints.
#[derive(Debug)]
struct Period<'a> {
    start: NaiveDate,
    end: NaiveDate,
    /// Chronological, oldest first.
    transactions: Vec<&'a Transaction>,
    opening: Cents,
    closing: Cents,
    /// Sums of the debit and credit columns.
    debits: Cents,
    credits: Cents,
}

impl<'a> Period<'a> {
    fn of(account: &'a Account, start: NaiveDate, end: NaiveDate) -> Self {
        // Accounts list transactions most recent first; same-day ones in reverse order of
        // posting, so reversing gives the order the running balance was computed in.
        let transactions: Vec<&Transaction> = account
            .transactions
            .iter()
            .rev()
            .filter(|t| (start..=end).contains(&t.date))
            .collect();
        let opening = if let Some(first) = transactions.first() {
            first.balance - effect(account.category, first)
        } else if let Some(before) = account.transactions.iter().find(|t| t.date < start) {
            before.balance
        } else if let Some(after) = account.transactions.last() {
            // Nothing before or during the month: the balance then is the one the oldest
            // (later) transaction started from.
            after.balance - effect(account.category, after)
        } else {
            account.current
        };
        let closing = transactions.last().map_or(opening, |t| t.balance);
        Self {
            start,
            end,
            debits: transactions.iter().filter_map(|t| t.debit).sum(),
            credits: transactions.iter().filter_map(|t| t.credit).sum(),
            transactions,
            opening,
            closing,
        }
    }

    /// The table body: the opening balance, the month's transactions, the closing balance.
    fn rows(&self) -> Vec<Row<'a>> {
        let mut rows = Vec::with_capacity(self.transactions.len() + 2);
        rows.push(Row::Opening);
        if self.transactions.is_empty() {
            rows.push(Row::Nothing);
        }
        rows.extend(self.transactions.iter().copied().map(Row::Transaction));
        rows.push(Row::Closing);
        rows
    }
}

#[derive(Debug, Clone, Copy)]
enum Row<'a> {
    Opening,
    Transaction(&'a Transaction),
    /// Stands in for the transactions of an empty month.
    Nothing,
    Closing,
}

/// `1234567` cents as `12,345.67`: exact integer arithmetic, two decimals, thousands grouped.
fn money(cents: Cents) -> String {
    let sign = if cents < 0 { "-" } else { "" };
    let abs = cents.unsigned_abs();
    let digits = (abs / 100).to_string();
    let mut grouped = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, digit) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            grouped.push(',');
        }
        grouped.push(digit);
    }
    format!("{sign}{grouped}.{:02}", abs % 100)
}

const MONTH_NAMES: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];

fn month_name(date: NaiveDate) -> &'static str {
    MONTH_NAMES
        .get(date.month0() as usize)
        .copied()
        .unwrap_or("")
}

/// `December 1, 2025`: spelled out so no reader mistakes the day for the month.
fn long_date(date: NaiveDate) -> String {
    format!("{} {}, {}", month_name(date), date.day(), date.year())
}

// Layout, in PDF points (1/72 in) from the bottom-left corner of an A4 page.
const PAGE_WIDTH: f32 = 595.28;
const PAGE_HEIGHT: f32 = 841.89;
const LEFT: f32 = 50.0;
const RIGHT: f32 = 545.0;
const TOP: f32 = 792.0;
const FOOTER_Y: f32 = 40.0;
/// Where the right-hand block of account details starts (labels, then values).
const DETAILS_LABEL_X: f32 = 320.0;
const DETAILS_VALUE_X: f32 = 405.0;
/// Table columns: dates and descriptions start at their x; amounts end at theirs.
const DATE_X: f32 = LEFT;
const DESCRIPTION_X: f32 = 104.0;
const DESCRIPTION_WIDTH: f32 = 232.0;
const DEBIT_RIGHT: f32 = 405.0;
const CREDIT_RIGHT: f32 = 475.0;
const BALANCE_RIGHT: f32 = RIGHT;
const BODY_SIZE: f32 = 9.0;

// Table rows sit on integer baselines so how many fit on a page is exact arithmetic.
const ROW_STEP: u16 = 14;
/// The lowest baseline a row may use: above the footer, with a margin.
const LOWEST_ROW_Y: u16 = 70;
/// The first row's baseline on the first page (below the summary) and on later pages.
const FIRST_PAGE_TOP_ROW_Y: u16 = 548;
const NEXT_PAGE_TOP_ROW_Y: u16 = 722;
const FIRST_PAGE_ROWS: usize = rows_below(FIRST_PAGE_TOP_ROW_Y);
const NEXT_PAGE_ROWS: usize = rows_below(NEXT_PAGE_TOP_ROW_Y);

const fn rows_below(top_row_y: u16) -> usize {
    ((top_row_y - LOWEST_ROW_Y) / ROW_STEP) as usize + 1
}

/// Splits the table into pages: a long month continues on further pages rather than running
/// off the bottom of the first.
fn paginate<'r, 'a>(rows: &'r [Row<'a>]) -> Vec<&'r [Row<'a>]> {
    let (first, rest) = rows.split_at(rows.len().min(FIRST_PAGE_ROWS));
    let mut pages = vec![first];
    pages.extend(rest.chunks(NEXT_PAGE_ROWS));
    pages
}

/// The two standard faces used. Neither is embedded: every PDF reader ships them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Font {
    Regular,
    Bold,
}

impl Font {
    fn resource(self) -> Name<'static> {
        match self {
            Self::Regular => Name(b"F1"),
            Self::Bold => Name(b"F2"),
        }
    }

    fn base_font(self) -> Name<'static> {
        match self {
            Self::Regular => Name(b"Helvetica"),
            Self::Bold => Name(b"Helvetica-Bold"),
        }
    }

    /// Advance widths (1/1000 em) of WinAnsi codes 32..=255, from Adobe's Helvetica AFMs.
    /// Needed to right-align amounts and to cut descriptions that would run into them.
    fn widths(self) -> &'static [u16; 224] {
        match self {
            Self::Regular => &HELVETICA_WIDTHS,
            Self::Bold => &HELVETICA_BOLD_WIDTHS,
        }
    }

    /// The width in points of WinAnsi-encoded `text` set at `size`.
    fn width(self, text: &[u8], size: f32) -> f32 {
        let widths = self.widths();
        let units: u32 = text
            .iter()
            .filter_map(|&b| usize::from(b).checked_sub(32).and_then(|i| widths.get(i)))
            .map(|&w| u32::from(w))
            .sum();
        units as f32 * size / 1000.0
    }
}

#[rustfmt::skip]
const HELVETICA_WIDTHS: [u16; 224] = [
    278, 278, 355, 556, 556, 889, 667, 191, 333, 333, 389, 584, 278, 333, 278, 278,
    556, 556, 556, 556, 556, 556, 556, 556, 556, 556, 278, 278, 584, 584, 584, 556,
    1015, 667, 667, 722, 722, 667, 611, 778, 722, 278, 500, 667, 556, 833, 722, 778,
    667, 778, 722, 667, 611, 722, 667, 944, 667, 667, 611, 278, 278, 278, 469, 556,
    333, 556, 556, 500, 556, 556, 278, 556, 556, 222, 222, 500, 222, 833, 556, 556,
    556, 556, 333, 500, 278, 556, 500, 722, 500, 500, 500, 334, 260, 334, 584, 0,
    556, 0, 222, 556, 333, 1000, 556, 556, 333, 1000, 667, 333, 1000, 0, 611, 0,
    0, 222, 222, 333, 333, 350, 556, 1000, 333, 1000, 500, 333, 944, 0, 500, 667,
    278, 333, 556, 556, 556, 556, 260, 556, 333, 737, 370, 556, 584, 333, 737, 333,
    400, 584, 333, 333, 333, 578, 537, 278, 333, 333, 365, 556, 834, 834, 834, 611,
    667, 667, 667, 667, 667, 667, 1000, 722, 667, 667, 667, 667, 278, 278, 278, 278,
    722, 722, 778, 778, 778, 778, 778, 584, 778, 722, 722, 722, 722, 667, 667, 611,
    556, 556, 556, 556, 556, 556, 889, 500, 556, 556, 556, 556, 278, 278, 278, 278,
    556, 556, 556, 556, 556, 556, 556, 584, 611, 556, 556, 556, 556, 500, 556, 500,
];

#[rustfmt::skip]
const HELVETICA_BOLD_WIDTHS: [u16; 224] = [
    278, 333, 474, 556, 556, 889, 722, 238, 333, 333, 389, 584, 278, 333, 278, 278,
    556, 556, 556, 556, 556, 556, 556, 556, 556, 556, 333, 333, 584, 584, 584, 611,
    975, 722, 722, 722, 722, 667, 611, 778, 722, 278, 556, 722, 611, 833, 722, 778,
    667, 778, 722, 667, 611, 722, 667, 944, 667, 667, 611, 333, 278, 333, 584, 556,
    333, 556, 611, 556, 611, 556, 333, 611, 611, 278, 278, 556, 278, 889, 611, 611,
    611, 611, 389, 556, 333, 611, 556, 778, 556, 556, 500, 389, 280, 389, 584, 0,
    556, 0, 278, 556, 500, 1000, 556, 556, 333, 1000, 667, 333, 1000, 0, 611, 0,
    0, 278, 278, 500, 500, 350, 556, 1000, 333, 1000, 556, 333, 944, 0, 500, 667,
    278, 333, 556, 556, 556, 556, 280, 556, 333, 737, 370, 556, 584, 333, 737, 333,
    400, 584, 333, 333, 333, 611, 556, 278, 333, 333, 365, 556, 834, 834, 834, 611,
    722, 722, 722, 722, 722, 722, 1000, 722, 667, 667, 667, 667, 278, 278, 278, 278,
    722, 722, 778, 778, 778, 778, 778, 584, 778, 722, 722, 722, 722, 667, 667, 611,
    556, 556, 556, 556, 556, 556, 889, 556, 556, 556, 556, 556, 278, 278, 278, 278,
    611, 611, 611, 611, 611, 611, 611, 584, 611, 611, 611, 611, 611, 556, 611, 556,
];

/// `…` in WinAnsiEncoding.
const ELLIPSIS: u8 = 0x85;

/// Encodes `text` for a WinAnsiEncoding font: Latin-1 maps straight through (é, ô, É), the
/// Windows-1252 extras to their codes, anything else to `?` rather than to broken bytes.
fn win_ansi(text: &str) -> Vec<u8> {
    text.chars()
        .map(|c| match c {
            ' '..='~' | '\u{a0}'..='\u{ff}' => u8::try_from(c).unwrap_or(b'?'),
            '\t' | '\n' | '\r' => b' ',
            '€' => 0x80,
            '‚' => 0x82,
            'ƒ' => 0x83,
            '„' => 0x84,
            '…' => ELLIPSIS,
            '†' => 0x86,
            '‡' => 0x87,
            'ˆ' => 0x88,
            '‰' => 0x89,
            'Š' => 0x8a,
            '‹' => 0x8b,
            'Œ' => 0x8c,
            'Ž' => 0x8e,
            '\u{2018}' => 0x91,
            '\u{2019}' => 0x92,
            '\u{201c}' => 0x93,
            '\u{201d}' => 0x94,
            '•' => 0x95,
            '–' => 0x96,
            '—' => 0x97,
            '˜' => 0x98,
            '™' => 0x99,
            'š' => 0x9a,
            '›' => 0x9b,
            'œ' => 0x9c,
            'ž' => 0x9e,
            'Ÿ' => 0x9f,
            _ => b'?',
        })
        .collect()
}

/// Encodes `text`, shortened with an ellipsis if it would be wider than `max_width`.
fn fit(font: Font, size: f32, text: &str, max_width: f32) -> Vec<u8> {
    let mut bytes = win_ansi(text);
    if font.width(&bytes, size) <= max_width {
        return bytes;
    }
    let room = max_width - font.width(&[ELLIPSIS], size);
    while !bytes.is_empty() && font.width(&bytes, size) > room {
        bytes.pop();
    }
    while bytes.last() == Some(&b' ') {
        bytes.pop();
    }
    bytes.push(ELLIPSIS);
    bytes
}

/// A content stream with the few drawing operations a statement needs.
struct Canvas {
    content: Content,
}

impl Canvas {
    fn new() -> Self {
        Self {
            content: Content::new(),
        }
    }

    /// Each text in its own BT/ET object at an absolute position: nothing depends on what
    /// was drawn before, and extractors see one line per text.
    fn text(&mut self, font: Font, size: f32, x: f32, y: f32, text: &[u8]) {
        self.content
            .begin_text()
            .set_font(font.resource(), size)
            .next_line(x, y)
            .show(Str(text))
            .end_text();
    }

    fn text_right(&mut self, font: Font, size: f32, right: f32, y: f32, text: &[u8]) {
        self.text(font, size, right - font.width(text, size), y, text);
    }

    fn gray_text(&mut self, font: Font, size: f32, x: f32, y: f32, text: &[u8]) {
        self.content.set_fill_gray(0.4);
        self.text(font, size, x, y, text);
        self.content.set_fill_gray(0.0);
    }

    fn gray_text_right(&mut self, font: Font, size: f32, right: f32, y: f32, text: &[u8]) {
        self.content.set_fill_gray(0.4);
        self.text_right(font, size, right, y, text);
        self.content.set_fill_gray(0.0);
    }

    /// A thin horizontal line across the text column.
    fn rule(&mut self, y: f32) {
        self.content
            .set_line_width(0.5)
            .set_stroke_gray(0.6)
            .move_to(LEFT, y)
            .line_to(RIGHT, y)
            .stroke();
    }

    /// A light band behind a table row, to guide the eye along it.
    fn band(&mut self, baseline: f32) {
        self.content
            .set_fill_gray(0.94)
            .rect(
                LEFT - 2.0,
                baseline - 4.0,
                RIGHT - LEFT + 4.0,
                f32::from(ROW_STEP),
            )
            .fill_nonzero()
            .set_fill_gray(0.0);
    }

    fn finish(self) -> Vec<u8> {
        self.content.finish().into_vec()
    }
}

/// What every page of one statement shares.
struct Sheet<'a> {
    institution: &'a str,
    account: &'a Account,
    period: &'a Period<'a>,
    unique_id: Uuid,
    page_count: usize,
}

impl Sheet<'_> {
    fn masked_number(&self) -> String {
        let digits: Vec<char> = self
            .account
            .account_number
            .chars()
            .filter(char::is_ascii_digit)
            .collect();
        let last_four: String = digits[digits.len().saturating_sub(4)..].iter().collect();
        format!("****{last_four}")
    }

    fn period_text(&self) -> String {
        format!(
            "{} to {}",
            long_date(self.period.start),
            long_date(self.period.end)
        )
    }

    fn draw_page(&self, index: usize, rows: &[Row<'_>]) -> Vec<u8> {
        let mut canvas = Canvas::new();
        let top_row_y = if index == 0 {
            self.first_page_header(&mut canvas);
            FIRST_PAGE_TOP_ROW_Y
        } else {
            self.continuation_header(&mut canvas);
            NEXT_PAGE_TOP_ROW_Y
        };
        self.table(&mut canvas, f32::from(top_row_y), rows);
        self.footer(&mut canvas, index);
        canvas.finish()
    }

    fn first_page_header(&self, canvas: &mut Canvas) {
        let account = self.account;
        self.title_line(canvas, "Account statement", 18.0, 12.0);
        canvas.text_right(
            Font::Regular,
            BODY_SIZE,
            RIGHT,
            TOP - 16.0,
            &win_ansi(&self.period_text()),
        );
        canvas.rule(TOP - 26.0);

        // The holder's name and mailing address, where an envelope window would show it.
        let holder = &account.holder;
        let address = &holder.address;
        let block_width = DETAILS_LABEL_X - LEFT - 15.0;
        let mut y = TOP - 52.0;
        canvas.text(
            Font::Bold,
            10.0,
            LEFT,
            y,
            &fit(Font::Bold, 10.0, &holder.name, block_width),
        );
        let mut lines = vec![address.civic_address.clone()];
        lines.extend(address.po_box.iter().map(|b| format!("PO Box {b}")));
        lines.push(format!(
            "{} {}  {}",
            address.city, address.province, address.postal_code
        ));
        lines.push(country_name(address.country).to_owned());
        for line in &lines {
            y -= 13.0;
            canvas.text(
                Font::Regular,
                BODY_SIZE,
                LEFT,
                y,
                &fit(Font::Regular, BODY_SIZE, line, block_width),
            );
        }

        let value_width = RIGHT - DETAILS_VALUE_X;
        let details = [
            ("Account", account.title.to_owned()),
            ("Account number", self.masked_number()),
            ("Transit number", account.transit_number.clone()),
            ("Institution number", account.institution_number.to_owned()),
            ("Currency", account.currency.to_owned()),
        ];
        let mut y = TOP - 52.0;
        for (label, value) in &details {
            canvas.gray_text(
                Font::Regular,
                BODY_SIZE,
                DETAILS_LABEL_X,
                y,
                &win_ansi(label),
            );
            canvas.text(
                Font::Regular,
                BODY_SIZE,
                DETAILS_VALUE_X,
                y,
                &fit(Font::Regular, BODY_SIZE, value, value_width),
            );
            y -= 13.0;
        }

        // The month in four figures; the table below shows how they were reached.
        let period = self.period;
        let (credits_label, debits_label) = match account.category {
            Category::Credits => ("Payments and credits", "Purchases and advances"),
            Category::Operations | Category::Products => {
                ("Deposits and credits", "Withdrawals and debits")
            }
        };
        let amount_right = DETAILS_LABEL_X - 20.0;
        let mut y = TOP - 136.0;
        canvas.text(Font::Bold, 10.0, LEFT, y, &win_ansi("Summary"));
        let summary = [
            (
                Font::Regular,
                format!("Opening balance on {}", long_date(period.start)),
                money(period.opening),
            ),
            (
                Font::Regular,
                format!("{credits_label} ({})", count_of(period, |t| t.credit)),
                money(period.credits),
            ),
            (
                Font::Regular,
                format!("{debits_label} ({})", count_of(period, |t| t.debit)),
                money(period.debits),
            ),
            (
                Font::Bold,
                format!("Closing balance on {}", long_date(period.end)),
                money(period.closing),
            ),
        ];
        for (font, label, amount) in &summary {
            y -= 14.0;
            canvas.text(*font, BODY_SIZE, LEFT, y, &win_ansi(label));
            canvas.text_right(*font, BODY_SIZE, amount_right, y, &win_ansi(amount));
        }
        if account.category == Category::Credits {
            // Credit balances count what is owed, the opposite sign convention of deposits.
            canvas.gray_text(
                Font::Regular,
                8.0,
                DETAILS_LABEL_X,
                y,
                &win_ansi("Balances show the amount owed."),
            );
        }
    }

    /// The institution's name on the left of the top line, `heading` on the right; the name is
    /// shortened so the two never overlap.
    fn title_line(&self, canvas: &mut Canvas, heading: &str, name_size: f32, heading_size: f32) {
        let heading = win_ansi(heading);
        let heading_width = Font::Bold.width(&heading, heading_size);
        let institution = fit(
            Font::Bold,
            name_size,
            self.institution,
            RIGHT - LEFT - heading_width - 20.0,
        );
        canvas.text(Font::Bold, name_size, LEFT, TOP, &institution);
        canvas.text_right(Font::Bold, heading_size, RIGHT, TOP, &heading);
    }

    fn continuation_header(&self, canvas: &mut Canvas) {
        self.title_line(canvas, "Account statement (continued)", 14.0, 11.0);
        let account = format!("{} {}", self.account.title, self.masked_number());
        canvas.text(
            Font::Regular,
            BODY_SIZE,
            LEFT,
            TOP - 16.0,
            &fit(Font::Regular, BODY_SIZE, &account, 240.0),
        );
        canvas.text_right(
            Font::Regular,
            BODY_SIZE,
            RIGHT,
            TOP - 16.0,
            &win_ansi(&self.period_text()),
        );
        canvas.rule(TOP - 26.0);
    }

    fn table(&self, canvas: &mut Canvas, top_row_y: f32, rows: &[Row<'_>]) {
        let header_y = top_row_y + 20.0;
        canvas.text(Font::Bold, BODY_SIZE, DATE_X, header_y, b"Date");
        canvas.text(
            Font::Bold,
            BODY_SIZE,
            DESCRIPTION_X,
            header_y,
            b"Description",
        );
        canvas.text_right(Font::Bold, BODY_SIZE, DEBIT_RIGHT, header_y, b"Debit");
        canvas.text_right(Font::Bold, BODY_SIZE, CREDIT_RIGHT, header_y, b"Credit");
        canvas.text_right(Font::Bold, BODY_SIZE, BALANCE_RIGHT, header_y, b"Balance");
        canvas.rule(header_y - 6.0);

        let period = self.period;
        let mut y = top_row_y;
        for (i, row) in rows.iter().enumerate() {
            if i % 2 == 1 {
                canvas.band(y);
            }
            let (font, date, description, debit, credit, balance) = match row {
                Row::Opening => (
                    Font::Bold,
                    Some(period.start),
                    "Opening balance",
                    None,
                    None,
                    Some(period.opening),
                ),
                Row::Transaction(t) => (
                    Font::Regular,
                    Some(t.date),
                    t.description.as_str(),
                    t.debit,
                    t.credit,
                    Some(t.balance),
                ),
                Row::Nothing => (
                    Font::Regular,
                    None,
                    "No transactions this period",
                    None,
                    None,
                    None,
                ),
                Row::Closing => (
                    Font::Bold,
                    Some(period.end),
                    "Closing balance",
                    None,
                    None,
                    Some(period.closing),
                ),
            };
            if let Some(date) = date {
                canvas.text(font, BODY_SIZE, DATE_X, y, &win_ansi(&date.to_string()));
            }
            canvas.text(
                font,
                BODY_SIZE,
                DESCRIPTION_X,
                y,
                &fit(font, BODY_SIZE, description, DESCRIPTION_WIDTH),
            );
            for (right, amount) in [
                (DEBIT_RIGHT, debit),
                (CREDIT_RIGHT, credit),
                (BALANCE_RIGHT, balance),
            ] {
                if let Some(amount) = amount {
                    canvas.text_right(font, BODY_SIZE, right, y, &win_ansi(&money(amount)));
                }
            }
            y -= f32::from(ROW_STEP);
        }
    }

    fn footer(&self, canvas: &mut Canvas, index: usize) {
        canvas.rule(FOOTER_Y + 12.0);
        canvas.gray_text(
            Font::Regular,
            7.0,
            LEFT,
            FOOTER_Y,
            &win_ansi(&format!(
                "Statement {} \u{b7} Sandbox statement of synthetic data",
                self.unique_id
            )),
        );
        canvas.gray_text_right(
            Font::Regular,
            7.0,
            RIGHT,
            FOOTER_Y,
            &win_ansi(&format!("Page {} of {}", index + 1, self.page_count)),
        );
    }
}

/// How many of the period's transactions have an amount in the given column.
fn count_of(period: &Period<'_>, column: impl Fn(&Transaction) -> Option<Cents>) -> usize {
    period
        .transactions
        .iter()
        .filter(|t| column(t).is_some())
        .count()
}

fn country_name(code: &str) -> &str {
    match code {
        "CA" => "Canada",
        "US" => "United States",
        other => other,
    }
}

/// Writes the statement PDF.
fn render(institution: &str, account: &Account, period: &Period<'_>, unique_id: Uuid) -> Vec<u8> {
    let rows = period.rows();
    let pages = paginate(&rows);
    let sheet = Sheet {
        institution,
        account,
        period,
        unique_id,
        page_count: pages.len(),
    };

    let catalog_id = Ref::new(1);
    let pages_id = Ref::new(2);
    let info_id = Ref::new(3);
    let regular_id = Ref::new(4);
    let bold_id = Ref::new(5);
    // Each page takes two ids: the page and its content stream.
    let page_ids: Vec<(Ref, Ref)> = (0..)
        .step_by(2)
        .take(pages.len())
        .map(|offset| (Ref::new(6 + offset), Ref::new(7 + offset)))
        .collect();

    let mut pdf = Pdf::new();
    // Readers want a file id; derived from the statement id so output stays reproducible.
    let file_id = unique_id.as_bytes().to_vec();
    pdf.set_file_id((file_id.clone(), file_id));
    pdf.catalog(catalog_id).pages(pages_id);
    pdf.pages(pages_id)
        .kids(page_ids.iter().map(|(page, _)| *page))
        .count(i32::try_from(pages.len()).unwrap_or(i32::MAX));
    let title = format!(
        "{institution} {} statement, {} {}",
        account.title,
        month_name(period.start),
        period.start.year()
    );
    pdf.document_info(info_id)
        .title(TextStr(&title))
        .producer(TextStr("bankgate sandbox"))
        // The statement's own date, not the time it was rendered.
        .creation_date(pdf_date(period.end));
    for font in [Font::Regular, Font::Bold] {
        let id = match font {
            Font::Regular => regular_id,
            Font::Bold => bold_id,
        };
        pdf.type1_font(id)
            .base_font(font.base_font())
            .encoding_predefined(Name(b"WinAnsiEncoding"));
    }

    for (index, (rows, (page_id, content_id))) in pages.iter().zip(&page_ids).enumerate() {
        {
            let mut page = pdf.page(*page_id);
            page.media_box(Rect::new(0.0, 0.0, PAGE_WIDTH, PAGE_HEIGHT))
                .parent(pages_id)
                .contents(*content_id);
            page.resources()
                .fonts()
                .pair(Font::Regular.resource(), regular_id)
                .pair(Font::Bold.resource(), bold_id);
        }
        let content = sheet.draw_page(index, rows);
        pdf.stream(*content_id, &content);
    }
    pdf.finish()
}

fn pdf_date(date: NaiveDate) -> Date {
    Date::new(u16::try_from(date.year()).unwrap_or(0))
        .month(u8::try_from(date.month()).unwrap_or(1))
        .day(u8::try_from(date.day()).unwrap_or(1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::LoginId;
    use crate::sandbox::accounts::{Address, Holder, accounts_for};

    fn as_of() -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 1, 21).unwrap()
    }

    fn date(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).unwrap()
    }

    fn login(n: u128) -> LoginId {
        LoginId::from_uuid(Uuid::from_u128(n))
    }

    fn chequing() -> Account {
        accounts_for(login(42), as_of()).remove(0)
    }

    /// An account written by hand, for cases the generator never produces.
    fn hand_made(transactions: Vec<Transaction>) -> Account {
        Account {
            id: Uuid::from_u128(7),
            title: "Chequing Account",
            kind: "Chequing",
            category: Category::Operations,
            currency: "CAD",
            account_number: "1234567".to_owned(),
            last_four_digits: None,
            transit_number: "12345".to_owned(),
            institution_number: "777",
            overdraft_limit: None,
            current: transactions.first().map_or(50_000, |t| t.balance),
            available: 50_000,
            limit: None,
            eft_eligible_ratio: 1.0,
            etransfer_eligible_ratio: 1.0,
            holder: Holder {
                name: "Émilie Côté".to_owned(),
                address: Address {
                    civic_address: "12 Boulevard René-Lévesque".to_owned(),
                    city: "Quebec City",
                    province: "QC",
                    postal_code: "G1R 4P5",
                    po_box: Some("42".to_owned()),
                    country: "CA",
                },
                email: "emilie.cote@example.com".to_owned(),
                phone_number: "+1 418-555-0101".to_owned(),
            },
            transactions,
        }
    }

    /// `n` deposits of one dollar spread over December 2025 from a 500.00 start, most recent
    /// first as accounts list them.
    fn deposits(n: u32) -> Vec<Transaction> {
        let mut balance = 50_000;
        let mut out: Vec<Transaction> = (0..n)
            .map(|i| {
                balance += 100;
                Transaction {
                    id: Uuid::from_u128(u128::from(i) + 1_000),
                    date: date(2025, 12, 1 + i * 28 / n),
                    description: format!("DEPOSIT {i:03} (MOBILE) \\ BRANCH"),
                    debit: None,
                    credit: Some(100),
                    balance,
                }
            })
            .collect();
        out.reverse();
        out
    }

    fn parse(pdf: &[u8]) -> lopdf::Document {
        lopdf::Document::load_mem(pdf).unwrap()
    }

    fn text_of(doc: &lopdf::Document) -> String {
        let pages: Vec<u32> = doc.get_pages().keys().copied().collect();
        doc.extract_text(&pages).unwrap()
    }

    /// Every text starts inside the page margins and, measured with the font's metrics, ends
    /// inside them too: nothing runs off the page.
    fn assert_within_margins(doc: &lopdf::Document) {
        for page_id in doc.get_pages().values() {
            let content = lopdf::content::Content::decode(&doc.get_page_content(*page_id)).unwrap();
            let (mut font, mut size, mut x, mut y) = (Font::Regular, 0.0, 0.0, 0.0);
            for op in &content.operations {
                match op.operator.as_str() {
                    "Tf" => {
                        font = match op.operands[0].as_name().unwrap() {
                            b"F1" => Font::Regular,
                            b"F2" => Font::Bold,
                            other => panic!("unknown font {other:?}"),
                        };
                        size = op.operands[1].as_float().unwrap();
                    }
                    "Td" => {
                        x = op.operands[0].as_float().unwrap();
                        y = op.operands[1].as_float().unwrap();
                    }
                    "Tj" => {
                        let text = op.operands[0].as_str().unwrap();
                        let end = x + font.width(text, size);
                        assert!(x >= LEFT - 0.01 && end <= RIGHT + 0.01, "{x}..{end}");
                        assert!((FOOTER_Y..=TOP).contains(&y), "{y}");
                    }
                    _ => {}
                }
            }
        }
    }

    fn assert_valid_pdf(pdf: &[u8]) -> lopdf::Document {
        assert!(pdf.starts_with(b"%PDF-"));
        let trimmed = pdf.strip_suffix(b"\n").unwrap_or(pdf);
        assert!(trimmed.ends_with(b"%%EOF"));
        let doc = parse(pdf);
        assert_within_margins(&doc);
        doc
    }

    #[test]
    fn the_same_input_gives_byte_identical_pdfs() {
        let account = chequing();
        let first = statements_for("Flinks Capital", &account, as_of(), StatementCount::Months3);
        let second = statements_for("Flinks Capital", &account, as_of(), StatementCount::Months3);
        assert_eq!(first, second);
        // And a different account gives different files.
        let other = accounts_for(login(43), as_of()).remove(0);
        let third = statements_for("Flinks Capital", &other, as_of(), StatementCount::Months3);
        assert_ne!(first[0].pdf, third[0].pdf);
    }

    #[test]
    fn months3_covers_the_three_complete_months_before_as_of() {
        let account = chequing();
        let statements =
            statements_for("Flinks Capital", &account, as_of(), StatementCount::Months3);
        let periods: Vec<(NaiveDate, NaiveDate)> = statements
            .iter()
            .map(|s| (s.period_start, s.period_end))
            .collect();
        assert_eq!(
            periods,
            [
                (date(2025, 12, 1), date(2025, 12, 31)),
                (date(2025, 11, 1), date(2025, 11, 30)),
                (date(2025, 10, 1), date(2025, 10, 31)),
            ]
        );
        let ids: std::collections::HashSet<Uuid> = statements.iter().map(|s| s.unique_id).collect();
        assert_eq!(ids.len(), 3);
        assert!(
            statements
                .iter()
                .all(|s| s.unique_id.get_version_num() == 4)
        );

        // The same month has the same id whichever count asked for it.
        let recent = statements_for(
            "Flinks Capital",
            &account,
            as_of(),
            StatementCount::MostRecent,
        );
        assert_eq!(recent.len(), 1);
        assert_eq!(recent[0].unique_id, statements[0].unique_id);
        assert_eq!(recent[0].period_start, date(2025, 12, 1));

        // Different accounts, different ids for the same month.
        let other = hand_made(Vec::new());
        assert_ne!(
            statements_for("X", &other, as_of(), StatementCount::MostRecent)[0].unique_id,
            recent[0].unique_id
        );
    }

    #[test]
    fn months12_reaches_back_a_year_and_february_ends_on_the_28th() {
        let statements = statements_for(
            "Flinks Capital",
            &chequing(),
            as_of(),
            StatementCount::Months12,
        );
        assert_eq!(statements.len(), 12);
        assert_eq!(statements[11].period_start, date(2025, 1, 1));
        assert_eq!(statements[10].period_end, date(2025, 2, 28));
        // The first of a month: the month just begun is still excluded.
        let on_first = statements_for(
            "X",
            &chequing(),
            date(2026, 1, 1),
            StatementCount::MostRecent,
        );
        assert_eq!(on_first[0].period_start, date(2025, 12, 1));
    }

    #[test]
    fn a_statement_is_a_valid_pdf_showing_holder_account_and_balances() {
        let account = chequing();
        let statement = &statements_for(
            "Flinks Capital",
            &account,
            as_of(),
            StatementCount::MostRecent,
        )[0];
        let period = Period::of(&account, statement.period_start, statement.period_end);
        assert!(
            period.rows().len() <= FIRST_PAGE_ROWS,
            "a typical month fits one page"
        );

        let doc = assert_valid_pdf(&statement.pdf);
        assert_eq!(doc.get_pages().len(), 1);
        let text = text_of(&doc);
        let last_four = &account.account_number[account.account_number.len() - 4..];
        let masked = format!("****{last_four}");
        let (opening, closing) = (money(period.opening), money(period.closing));
        for expected in [
            "Flinks Capital",
            "Account statement",
            account.holder.name.as_str(),
            account.holder.address.civic_address.as_str(),
            account.title,
            &masked,
            account.transit_number.as_str(),
            "777",
            "December 1, 2025 to December 31, 2025",
            &opening,
            &closing,
            &period.transactions[0].description,
            "Page 1 of 1",
        ] {
            assert!(
                text.contains(expected),
                "{expected:?} missing from:\n{text}"
            );
        }
        assert!(
            !text.contains(&account.account_number),
            "the number is masked"
        );
        assert!(
            statement.pdf.len() < 50 * 1024,
            "{} bytes",
            statement.pdf.len()
        );
        eprintln!(
            "typical statement: {} transactions, {} bytes",
            period.transactions.len(),
            statement.pdf.len()
        );
    }

    #[test]
    fn accented_names_survive_in_win_ansi() {
        let account = hand_made(deposits(3));
        let statement =
            &statements_for("Banque Côté", &account, as_of(), StatementCount::MostRecent)[0];
        let text = text_of(&assert_valid_pdf(&statement.pdf));
        for expected in [
            "Banque Côté",
            "Émilie Côté",
            "12 Boulevard René-Lévesque",
            "PO Box 42",
        ] {
            assert!(
                text.contains(expected),
                "{expected:?} missing from:\n{text}"
            );
        }
        assert_eq!(win_ansi("é€✓"), [0xe9, 0x80, b'?']);
    }

    #[test]
    fn opening_plus_the_month_s_effects_is_the_closing_balance() {
        for n in 0..30 {
            for account in accounts_for(login(n), as_of()) {
                let statements = statements_for("X", &account, as_of(), StatementCount::Months12);
                let periods: Vec<Period<'_>> = statements
                    .iter()
                    .map(|s| Period::of(&account, s.period_start, s.period_end))
                    .collect();
                for period in &periods {
                    let effects: Cents = period
                        .transactions
                        .iter()
                        .map(|t| effect(account.category, t))
                        .sum();
                    assert_eq!(period.opening + effects, period.closing, "{}", account.kind);
                    let (credits, debits) = match account.category {
                        Category::Credits => (-period.credits, period.debits),
                        _ => (period.credits, -period.debits),
                    };
                    assert_eq!(period.opening + credits + debits, period.closing);
                }
                // Each month opens where the one before it closed.
                for pair in periods.windows(2) {
                    assert_eq!(pair[0].opening, pair[1].closing, "{}", account.kind);
                }
            }
        }
    }

    #[test]
    fn a_month_without_transactions_still_gets_a_statement() {
        // Transactions only before the period: it opens and closes at the last balance.
        let mut before = deposits(2);
        for t in &mut before {
            t.date = date(2025, 10, 15);
        }
        // Nothing at all: the current balance.
        for (account, balance) in [(hand_made(before), 50_200), (hand_made(Vec::new()), 50_000)] {
            let statement = &statements_for("X", &account, as_of(), StatementCount::MostRecent)[0];
            let period = Period::of(&account, statement.period_start, statement.period_end);
            assert_eq!((period.opening, period.closing), (balance, balance));
            let doc = assert_valid_pdf(&statement.pdf);
            assert_eq!(doc.get_pages().len(), 1);
            let text = text_of(&doc);
            assert!(text.contains("No transactions this period"), "{text}");
            assert!(text.contains(&money(balance)), "{text}");
        }

        // Only later transactions: the balance the oldest of them started from.
        let mut after = deposits(1);
        after[0].date = date(2026, 1, 5);
        let account = hand_made(after);
        let period = Period::of(&account, date(2025, 12, 1), date(2025, 12, 31));
        assert_eq!((period.opening, period.closing), (50_000, 50_000));
    }

    #[test]
    fn a_long_month_continues_on_further_pages() {
        let account = hand_made(deposits(100));
        let statement = &statements_for("X", &account, as_of(), StatementCount::MostRecent)[0];
        // 102 rows (opening, 100 transactions, closing): 35 on the first page, 47 on the next.
        assert_eq!((FIRST_PAGE_ROWS, NEXT_PAGE_ROWS), (35, 47));
        let doc = assert_valid_pdf(&statement.pdf);
        assert_eq!(doc.get_pages().len(), 3);
        let text = text_of(&doc);
        assert!(text.contains("Page 3 of 3"));
        assert!(text.contains("Account statement (continued)"));
        assert!(text.contains("DEPOSIT 099 (MOBILE) \\ BRANCH"), "{text}");
        assert!(text.contains(&money(60_000)));
        assert!(statement.pdf.len() < 50 * 1024);
    }

    #[test]
    fn long_text_is_cut_to_its_column() {
        let long = "A VERY LONG DESCRIPTION THAT WOULD RUN INTO THE AMOUNT COLUMNS OF THE TABLE";
        let fitted = fit(Font::Regular, BODY_SIZE, long, DESCRIPTION_WIDTH);
        assert!(Font::Regular.width(&fitted, BODY_SIZE) <= DESCRIPTION_WIDTH);
        assert_eq!(fitted.last(), Some(&ELLIPSIS));
        assert_eq!(
            fit(Font::Regular, BODY_SIZE, "IGA", DESCRIPTION_WIDTH),
            b"IGA"
        );
        // Digits are 556/1000 em in Helvetica: "00" at 10pt is 11.12pt.
        assert!((Font::Regular.width(b"00", 10.0) - 11.12).abs() < 1e-4);
    }

    #[test]
    fn money_has_two_decimals_and_grouped_thousands() {
        assert_eq!(money(0), "0.00");
        assert_eq!(money(5), "0.05");
        assert_eq!(money(-5), "-0.05");
        assert_eq!(money(123_456), "1,234.56");
        assert_eq!(money(100_000_000), "1,000,000.00");
        assert_eq!(money(-99_999), "-999.99");
        assert_eq!(money(Cents::MIN), "-92,233,720,368,547,758.08");
    }

    #[test]
    fn statement_count_parses_the_three_values_in_any_case() {
        for (input, expected, months) in [
            ("MostRecent", StatementCount::MostRecent, 1),
            ("mostrecent", StatementCount::MostRecent, 1),
            ("Months3", StatementCount::Months3, 3),
            ("MONTHS3", StatementCount::Months3, 3),
            ("months12", StatementCount::Months12, 12),
        ] {
            let parsed: StatementCount = input.parse().unwrap();
            assert_eq!(parsed, expected);
            assert_eq!(parsed.months(), months);
            assert_eq!(parsed.to_string().parse::<StatementCount>(), Ok(parsed));
        }
        for bad in ["", "Months6", "3", " Months3", "Most Recent", "Months"] {
            let error = bad.parse::<StatementCount>().unwrap_err();
            assert!(error.contains("MostRecent, Months3 or Months12"), "{error}");
        }
        assert_eq!(StatementCount::default(), StatementCount::MostRecent);
    }
}
