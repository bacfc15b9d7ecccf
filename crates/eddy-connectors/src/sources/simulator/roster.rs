//! Fixed vocabularies and the rosters (departments, projects, customers,
//! merchants, employees, hosts) built from the seed. Every string is built
//! once as a shared `Arc<str>`.

use std::sync::Arc;

use eddy_core::{Fields, Str, Sym, Value};
use rand::rngs::SmallRng;
use rand::Rng;

pub(super) fn strs(items: &[&str]) -> Vec<Str> {
    items.iter().map(|s| Str::from(*s)).collect()
}

pub(super) const DEPARTMENTS: [&str; 12] = [
    "Retail Banking",
    "Corporate Banking",
    "Wealth Management",
    "Treasury",
    "Risk Management",
    "Compliance",
    "Technology",
    "Operations",
    "Human Resources",
    "Marketing",
    "Finance",
    "Legal",
];

const FIRST_NAMES: [&str; 24] = [
    "Maria",
    "James",
    "Sofia",
    "Daniel",
    "Ana",
    "Robert",
    "Camila",
    "Michael",
    "Lucia",
    "David",
    "Valentina",
    "John",
    "Isabella",
    "Carlos",
    "Emily",
    "Javier",
    "Sarah",
    "Diego",
    "Laura",
    "Andrew",
    "Gabriela",
    "Thomas",
    "Paula",
    "Kevin",
];
const LAST_NAMES: [&str; 24] = [
    "Garcia",
    "Smith",
    "Rodriguez",
    "Johnson",
    "Martinez",
    "Williams",
    "Lopez",
    "Brown",
    "Gonzalez",
    "Jones",
    "Perez",
    "Miller",
    "Sanchez",
    "Davis",
    "Ramirez",
    "Wilson",
    "Torres",
    "Anderson",
    "Flores",
    "Taylor",
    "Rivera",
    "Thomas",
    "Gomez",
    "Moore",
];

const PROJECT_ADJ: [&str; 12] = [
    "Atlas", "Phoenix", "Horizon", "Nova", "Orion", "Apex", "Quantum", "Summit", "Beacon",
    "Catalyst", "Titan", "Vega",
];
const PROJECT_NOUN: [&str; 12] = [
    "Payments Modernization",
    "Core Banking Migration",
    "Fraud Analytics",
    "Cloud Data Platform",
    "Customer 360",
    "Regulatory Reporting",
    "Mobile App Redesign",
    "Open Banking API",
    "KYC Automation",
    "Treasury Optimization",
    "Branch Digitization",
    "AML Monitoring",
];

/// `(country code, currency, units per USD, cities)`.
pub(super) const COUNTRIES: [(&str, &str, f64, [&str; 3]); 6] = [
    ("US", "USD", 1.0, ["New York", "Miami", "Chicago"]),
    ("AR", "ARS", 950.0, ["Buenos Aires", "Cordoba", "Rosario"]),
    (
        "BR",
        "BRL",
        5.1,
        ["Sao Paulo", "Rio de Janeiro", "Brasilia"],
    ),
    ("CL", "CLP", 930.0, ["Santiago", "Valparaiso", "Concepcion"]),
    ("CO", "COP", 4000.0, ["Bogota", "Medellin", "Cali"]),
    (
        "MX",
        "MXN",
        17.5,
        ["Mexico City", "Guadalajara", "Monterrey"],
    ),
];
/// Share of customers living in each country.
pub(super) const COUNTRY_WEIGHTS: [f64; 6] = [30.0, 12.0, 20.0, 10.0, 10.0, 18.0];

/// `(merchant category, median amount in USD, extra risk)`.
pub(super) const MERCHANT_CATEGORIES: [(&str, f64, f64); 11] = [
    ("grocery", 45.0, 0.0),
    ("restaurants", 35.0, 0.0),
    ("fuel", 50.0, 0.0),
    ("retail", 80.0, 0.0),
    ("utilities", 120.0, 0.0),
    ("entertainment", 40.0, 2.0),
    ("healthcare", 150.0, 0.0),
    ("electronics", 300.0, 5.0),
    ("travel", 600.0, 5.0),
    ("jewelry", 900.0, 12.0),
    ("crypto_exchange", 700.0, 18.0),
];
pub(super) const MERCHANT_CATEGORY_WEIGHTS: [f64; 11] =
    [22.0, 18.0, 10.0, 14.0, 8.0, 8.0, 5.0, 6.0, 5.0, 2.0, 2.0];
const MERCHANT_PREFIX: [&str; 10] = [
    "Central", "Del Sol", "Andes", "Pacific", "Plaza", "Nueva", "Grand", "Rio", "Metro", "Golden",
];

pub(super) const CHANNELS: [&str; 5] = ["Online", "Mobile", "ATM", "Branch", "Phone"];
pub(super) const CHANNEL_WEIGHTS: [f64; 5] = [35.0, 35.0, 10.0, 10.0, 10.0];

pub(super) const REGULATIONS: [&str; 9] = [
    "SOX",
    "GDPR",
    "Basel III",
    "AML",
    "KYC",
    "PCI-DSS",
    "CCAR",
    "Dodd-Frank",
    "MiFID II",
];
pub(super) const COMPLIANCE_ISSUES: [&str; 10] = [
    "missing control evidence",
    "late suspicious activity report",
    "incomplete customer due diligence",
    "unencrypted cardholder data found",
    "access review overdue",
    "data retention policy breach",
    "capital ratio reporting discrepancy",
    "unreconciled general ledger accounts",
    "consent records missing",
    "segregation of duties conflict",
];

pub(super) const RISK_CATEGORIES: [&str; 7] = [
    "credit",
    "market",
    "operational",
    "liquidity",
    "compliance",
    "reputational",
    "strategic",
];
pub(super) const RISK_DESCRIPTIONS: [[&str; 2]; 7] = [
    [
        "Rising delinquency in the consumer loan book",
        "Large corporate borrower downgraded",
    ],
    [
        "FX exposure to ARS devaluation",
        "Interest rate shock on the bond portfolio",
    ],
    [
        "Core banking batch failure delayed settlements",
        "Third-party vendor outage",
    ],
    [
        "Deposit outflows above forecast",
        "Intraday funding gap in USD clearing",
    ],
    [
        "Regulatory finding on AML monitoring",
        "KYC backlog exceeds tolerance",
    ],
    [
        "Negative press on fee practices",
        "Social media complaints spike",
    ],
    [
        "Competitor launched zero-fee accounts",
        "Digital transformation behind plan",
    ],
];

pub(super) const SERVICES: [&str; 8] = [
    "payments-api",
    "auth-service",
    "ledger",
    "fraud-scoring",
    "reporting",
    "mobile-gateway",
    "kafka-broker",
    "postgres",
];

pub(super) const ETL_JOBS: [&str; 8] = [
    "daily_gl_load",
    "transactions_ingest",
    "customer_dim_refresh",
    "risk_aggregation",
    "regulatory_report_build",
    "fx_rates_sync",
    "budget_actuals_load",
    "crm_export",
];
pub(super) const ETL_STAGES: [&str; 4] = ["extract", "transform", "load", "validate"];

pub(super) const REPOS: [&str; 8] = [
    "payments-core",
    "mobile-banking-app",
    "risk-engine",
    "data-platform",
    "compliance-reporting",
    "customer-portal",
    "infra-terraform",
    "fraud-models",
];
pub(super) const COMMIT_MESSAGES: [&str; 14] = [
    "feat: add retry with backoff to settlement batch",
    "fix: handle null merchant category in scoring",
    "refactor: split ledger posting into smaller services",
    "chore: bump dependencies for security patches",
    "feat: expose budget utilization endpoint",
    "fix: race condition in session refresh",
    "perf: cache FX rates for 60 seconds",
    "test: cover KYC document expiry edge cases",
    "docs: document the AML alert triage flow",
    "feat: add GDPR erasure workflow",
    "fix: incorrect rounding for CLP amounts",
    "hotfix: revert failing migration on prod",
    "feat: new risk score features for foreign transactions",
    "ci: parallelize integration tests",
];
pub(super) const BRANCH_TOPICS: [&str; 10] = [
    "settlement-retry",
    "fx-cache",
    "gdpr-erasure",
    "risk-features",
    "session-refresh",
    "kyc-expiry",
    "budget-api",
    "ledger-split",
    "aml-triage",
    "clp-rounding",
];

pub(super) const DOC_PLATFORMS: [&str; 3] = ["Confluence", "SharePoint", "Notion"];
pub(super) const DOC_PAGES: [&str; 12] = [
    "Payments Runbook",
    "AML Alert Triage Procedure",
    "Q3 Budget Planning",
    "Incident Postmortem: Ledger Outage",
    "Onboarding Guide for Engineers",
    "Data Retention Policy",
    "Architecture Decision Records",
    "Basel III Capital Reporting",
    "Mobile Release Checklist",
    "Vendor Risk Assessment",
    "Disaster Recovery Plan",
    "API Style Guide",
];
pub(super) const DOC_ACTIONS: [&str; 3] = ["created", "edited", "commented"];

pub(super) const PM_TOOLS: [&str; 3] = ["Jira", "Linear", "Asana"];
pub(super) const ISSUE_STATUSES: [&str; 5] =
    ["To Do", "In Progress", "In Review", "Done", "Blocked"];
pub(super) const PRIORITIES: [&str; 4] = ["Low", "Medium", "High", "Critical"];
pub(super) const ISSUE_TITLES: [&str; 10] = [
    "Integrate sanctions screening API",
    "Fix flaky settlement test",
    "Migrate reports to new warehouse",
    "Add audit trail for limit changes",
    "Improve dashboard load time",
    "Rotate expiring TLS certificates",
    "Implement budget alert thresholds",
    "Update KYC document checklist",
    "Reduce false positives in fraud rules",
    "Prepare audit evidence package",
];

pub(super) const CHAT_PLATFORMS: [&str; 2] = ["Slack", "Teams"];
pub(super) const CHAT_CHANNELS: [&str; 8] = [
    "#payments-eng",
    "#risk-ops",
    "#compliance",
    "#finance-leads",
    "#incidents",
    "#data-platform",
    "#general",
    "#exec-updates",
];
/// Message templates by tone; `{p}` is replaced by a project name.
pub(super) const MESSAGES: [&[&str]; 4] = [
    // positive
    &[
        "Great work everyone, {p} shipped ahead of schedule!",
        "Thanks for the quick fix, the dashboard looks great now.",
        "Happy to report {p} passed UAT with no issues.",
        "Excellent progress on {p} this sprint, well done team.",
        "The audit went smoothly, thank you all for the preparation.",
    ],
    // neutral
    &[
        "Standup moved to 10:30 tomorrow.",
        "Can someone review the PR for {p}?",
        "Sharing the meeting notes for {p} in the channel.",
        "Reminder: quarterly planning docs are due Friday.",
        "Who owns the data refresh for the risk report?",
        "Release notes for v2.3.1 are up, see section 4.2 for the API changes.",
        "Compliance asked for the ISO-27001 evidence pack by end of week.",
    ],
    // negative
    &[
        "I'm worried {p} will miss the deadline, we are blocked again.",
        "The build has been broken all morning, this is frustrating.",
        "Budget numbers look bad, we are way over on {p}.",
        "Customers are complaining about failed payments again.",
        "This delay on {p} is unacceptable, we need a plan.",
    ],
    // urgent
    &[
        "URGENT: production payments are failing, all hands please join the bridge.",
        "Critical: {p} deadline is tomorrow and testing is not done, need help ASAP.",
        "ASAP: auditors need the SOX evidence today.",
        "Escalating: budget overrun on {p} needs SVP approval immediately.",
        "Sev1 incident: fraud scoring is down, transactions are queuing.",
    ],
];

/// Details a chat message may end with, each mentioning one entity of the
/// kind named (`{}` is where it goes); the message's `mentions` field lists
/// them, the truth an entity extractor is measured against.
pub(super) const MESSAGE_DETAILS: [(&str, &str); 8] = [
    ("ticket", "Tracking it in {}."),
    ("hostname", "Host {} is not responding."),
    ("url", "Details: {}"),
    ("email", "Ask {} for access."),
    ("amount", "Impact so far is {}."),
    ("ip", "Most errors come from {}."),
    ("date", "Fix planned for {}."),
    ("technology", "Looks like a {} problem."),
];

/// Technologies chat messages mention.
pub(super) const TECHNOLOGIES: [&str; 8] = [
    "Kafka",
    "PostgreSQL",
    "Redis",
    "Kubernetes",
    "Terraform",
    "Snowflake",
    "Elasticsearch",
    "Spark",
];

pub(super) const QUALITY_CHECKS: [&str; 7] = [
    "null_rate",
    "duplicate_keys",
    "schema_drift",
    "freshness",
    "row_count_anomaly",
    "referential_integrity",
    "value_range",
];
pub(super) const DATASETS: [&str; 8] = [
    "warehouse.transactions_daily",
    "warehouse.customer_dim",
    "warehouse.gl_entries",
    "lake.raw_payments",
    "lake.fx_rates",
    "mart.budget_actuals",
    "mart.risk_exposures",
    "mart.compliance_findings",
];

pub(super) const KNOWLEDGE_SOURCES: [&str; 5] =
    ["Confluence", "Slack", "Jira", "SharePoint", "Teams"];
pub(super) const TOPICS: [&str; 12] = [
    "payments",
    "fraud",
    "budget",
    "compliance",
    "cloud migration",
    "incident response",
    "customer experience",
    "regulatory reporting",
    "data quality",
    "security",
    "hiring",
    "vendor management",
];

pub(super) const USER_ACTIONS: [&str; 8] = [
    "login",
    "view_dashboard",
    "open_report",
    "export_report",
    "search",
    "acknowledge_alert",
    "update_settings",
    "logout",
];
pub(super) const PAGES: [&str; 8] = [
    "/dashboard",
    "/budgets",
    "/projects",
    "/compliance",
    "/transactions",
    "/risk",
    "/alerts",
    "/settings",
];

pub(super) const SEVERITIES: [&str; 4] = ["low", "medium", "high", "critical"];
pub(super) const COMPLIANCE_STATUSES: [&str; 4] =
    ["open", "under_review", "remediation", "resolved"];
pub(super) const MITIGATION_STATUSES: [&str; 5] = [
    "identified",
    "assessing",
    "mitigating",
    "monitoring",
    "resolved",
];
pub(super) const EXPENSE_TYPES: [&str; 7] = [
    "payroll",
    "vendors",
    "cloud",
    "travel",
    "licenses",
    "consulting",
    "facilities",
];

fn person(rng: &mut SmallRng) -> String {
    format!(
        "{} {}",
        FIRST_NAMES[rng.random_range(0..FIRST_NAMES.len())],
        LAST_NAMES[rng.random_range(0..LAST_NAMES.len())]
    )
}

/// A department and its budget.
pub(super) struct Department {
    pub name: Str,
    pub svp: Str,
    /// Initial allocation, USD.
    pub allocated: f64,
    /// Initial utilization (fraction).
    pub start_utilization: f64,
    /// Utilization the department drifts toward in normal times (fraction).
    pub target: f64,
}

/// A project.
pub(super) struct Project {
    pub id: Str,
    pub name: Str,
    pub key: Str,
    pub department: usize,
    pub budget: f64,
    /// Final cost relative to budget this project is heading for.
    pub overrun: f64,
    pub team_size: i64,
    pub start_progress: f64,
    pub start_days: f64,
}

/// A bank customer.
pub(super) struct Customer {
    pub country: usize,
    pub location: Str,
    /// `{id, home_location}`, shared by all of the customer's transactions.
    pub user: Value,
}

/// A merchant.
pub(super) struct Merchant {
    pub name: Str,
    pub category: usize,
}

/// Everything fixed for a seed.
pub(super) struct Roster {
    pub departments: Vec<Department>,
    pub projects: Vec<Project>,
    pub customers: Vec<Customer>,
    /// Merchant indices per country.
    pub merchants_by_country: Vec<Vec<usize>>,
    pub merchants: Vec<Merchant>,
    /// Employee display names.
    pub employees: Vec<Str>,
    /// Employee user names (`jgarcia`).
    pub usernames: Vec<Str>,
    pub officers: Vec<Str>,
    /// `(host, service, base cpu %)`.
    pub hosts: Vec<(Str, Str, f64)>,
    pub country_codes: Vec<Str>,
    pub currencies: Vec<Str>,
    /// `"City, CC"` per country and city.
    pub locations: Vec<Vec<Str>>,
}

pub(super) const NUM_PROJECTS: usize = 24;
pub(super) const NUM_CUSTOMERS: usize = 600;
const NUM_MERCHANTS: usize = 90;
const NUM_EMPLOYEES: usize = 60;

pub(super) fn weighted(rng: &mut SmallRng, weights: &[f64]) -> usize {
    let total: f64 = weights.iter().sum();
    let mut x = rng.random::<f64>() * total;
    for (i, w) in weights.iter().enumerate() {
        if x < *w {
            return i;
        }
        x -= w;
    }
    weights.iter().rposition(|w| *w > 0.0).unwrap_or(0)
}

/// The name of project `i` (the same for every seed).
fn project_name(i: usize) -> String {
    format!(
        "{} {}",
        PROJECT_ADJ[i % PROJECT_ADJ.len()],
        PROJECT_NOUN[(i * 5 + i / PROJECT_ADJ.len()) % PROJECT_NOUN.len()]
    )
}

/// Every project's name.
pub(super) fn project_names() -> Vec<String> {
    (0..NUM_PROJECTS).map(project_name).collect()
}

impl Roster {
    pub(super) fn new(rng: &mut SmallRng) -> Roster {
        let departments = DEPARTMENTS
            .iter()
            .map(|d| Department {
                name: Str::from(*d),
                svp: Str::from(person(rng)),
                allocated: (rng.random_range(5.0..80.0f64) * 1e6).round(),
                start_utilization: rng.random_range(0.30..0.65),
                target: rng.random_range(0.60..0.92),
            })
            .collect();
        let projects = (0..NUM_PROJECTS)
            .map(|i| {
                let name = project_name(i);
                let key: String = PROJECT_ADJ[i % PROJECT_ADJ.len()]
                    .chars()
                    .take(3)
                    .collect::<String>()
                    .to_uppercase();
                Project {
                    id: Str::from(format!("PRJ-{}", 1001 + i)),
                    name: Str::from(name),
                    key: Str::from(format!("{key}{}", i / PROJECT_ADJ.len() + 1)),
                    department: rng.random_range(0..DEPARTMENTS.len()),
                    budget: (rng.random_range(0.2..12.0f64) * 1e6).round(),
                    overrun: rng.random_range(0.85..1.35),
                    team_size: rng.random_range(3..40),
                    start_progress: rng.random_range(0.0..60.0),
                    start_days: rng.random_range(30.0..300.0),
                }
            })
            .collect();
        let country_codes: Vec<Str> = COUNTRIES.iter().map(|c| Str::from(c.0)).collect();
        let currencies: Vec<Str> = COUNTRIES.iter().map(|c| Str::from(c.1)).collect();
        let locations: Vec<Vec<Str>> = COUNTRIES
            .iter()
            .map(|c| {
                c.3.iter()
                    .map(|city| Str::from(format!("{city}, {}", c.0)))
                    .collect()
            })
            .collect();
        let (id_sym, home_sym) = (Sym::intern("id"), Sym::intern("home_location"));
        let customers = (0..NUM_CUSTOMERS)
            .map(|i| {
                let country = weighted(rng, &COUNTRY_WEIGHTS);
                let c = rng.random_range(0..3);
                let location = locations[country][c].clone();
                let mut user = Fields::with_capacity(2);
                user.push(id_sym, Value::Str(Str::from(format!("U{:05}", 10_000 + i))));
                user.push(home_sym, Value::Str(location.clone()));
                Customer {
                    country,
                    location,
                    user: Value::Map(Arc::new(user)),
                }
            })
            .collect();
        let mut merchants_by_country = vec![Vec::new(); COUNTRIES.len()];
        let merchants = (0..NUM_MERCHANTS)
            .map(|i| {
                // Every country gets merchants of every kind over the roster.
                let country = i % COUNTRIES.len();
                merchants_by_country[country].push(i);
                let category = weighted(rng, &MERCHANT_CATEGORY_WEIGHTS);
                let cat = MERCHANT_CATEGORIES[category].0;
                let noun = match cat {
                    "grocery" => "Market",
                    "restaurants" => "Bistro",
                    "fuel" => "Fuel Station",
                    "retail" => "Store",
                    "utilities" => "Energy",
                    "entertainment" => "Cinemas",
                    "healthcare" => "Pharmacy",
                    "electronics" => "Electronics",
                    "travel" => "Airlines",
                    "jewelry" => "Jewelers",
                    _ => "Crypto Exchange",
                };
                let prefix = MERCHANT_PREFIX[rng.random_range(0..MERCHANT_PREFIX.len())];
                Merchant {
                    name: Str::from(format!("{prefix} {noun} {}", COUNTRIES[country].0)),
                    category,
                }
            })
            .collect();
        let mut employees = Vec::with_capacity(NUM_EMPLOYEES);
        let mut usernames = Vec::with_capacity(NUM_EMPLOYEES);
        for _ in 0..NUM_EMPLOYEES {
            let name = person(rng);
            let (first, last) = name.split_once(' ').unwrap_or((&name, ""));
            let user = format!(
                "{}{}",
                first.chars().next().unwrap_or('x').to_ascii_lowercase(),
                last.to_lowercase()
            );
            employees.push(Str::from(name.as_str()));
            usernames.push(Str::from(user));
        }
        let officers = (0..8).map(|_| Str::from(person(rng))).collect();
        let hosts = (0..20)
            .map(|i| {
                let service = SERVICES[i % SERVICES.len()];
                (
                    Str::from(format!("{service}-{:02}", i / SERVICES.len() + 1)),
                    Str::from(service),
                    rng.random_range(15.0..55.0),
                )
            })
            .collect();
        Roster {
            departments,
            projects,
            customers,
            merchants_by_country,
            merchants,
            employees,
            usernames,
            officers,
            hosts,
            country_codes,
            currencies,
            locations,
        }
    }
}
