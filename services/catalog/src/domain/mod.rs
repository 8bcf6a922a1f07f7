//! The catalog context's rules: what a product and its price are, the field rules the
//! contract cannot state (a blank name after trimming, a positive price), and what can go
//! wrong.
//! Pure: no I/O, no generated or storage types.

mod rules;

pub use rules::*;

use polyshop_platform::status::Violations;

/// An amount of money: integer minor units and an ISO 4217 code, never a float.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Money {
    /// In the currency's minor unit, e.g. 1999 for 19.99 USD.
    pub amount_minor: i64,
    /// Three upper-case ASCII letters, e.g. `USD`.
    pub currency_code: String,
}

/// Something the shop sells.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Product {
    /// UUIDv7, so ids sort by creation.
    pub id: String,
    /// 1–200 characters, trimmed.
    pub name: String,
    /// Up to 5000 characters.
    pub description: String,
    /// Lower-case slug, e.g. `kitchen`.
    pub category: String,
    /// Unit price: the default one, which version 1 shows and orders are charged.
    pub price: Money,
    /// Prices in further currencies (version 2), sorted by currency code; none is in
    /// `price`'s currency.
    pub other_prices: Vec<Money>,
    /// Listed and orderable when true; inactive products are still readable by id.
    pub active: bool,
    /// Epoch ms.
    pub created_at: i64,
    /// Epoch ms; strictly increases with every update.
    pub updated_at: i64,
}

/// What CreateProduct asks for, before validation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProductDraft {
    /// Client-chosen idempotency key; empty for none.
    pub request_id: String,
    /// Name.
    pub name: String,
    /// Description.
    pub description: String,
    /// Category slug.
    pub category: String,
    /// Unit price; required.
    pub price: Option<Money>,
    /// Prices in further currencies (version 2's `prices[1..]`); empty from version 1.
    pub other_prices: Vec<Money>,
    /// Whether it starts active.
    pub active: bool,
}

/// A product about to be created: trimmed and valid, not yet stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewProduct {
    /// Idempotency key; a second create with the same one returns the first product.
    pub request_id: Option<String>,
    /// Name.
    pub name: String,
    /// Description.
    pub description: String,
    /// Category slug.
    pub category: String,
    /// Unit price.
    pub price: Money,
    /// Prices in further currencies, sorted by currency code, none in `price`'s.
    pub other_prices: Vec<Money>,
    /// Whether it starts active.
    pub active: bool,
}

/// What UpdateProduct changes: `None` leaves a field as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProductChanges {
    /// New name.
    pub name: Option<String>,
    /// New description.
    pub description: Option<String>,
    /// New category.
    pub category: Option<String>,
    /// New price. Without `other_prices`, a stored price in its currency is dropped (version
    /// 1 sets the one price it knows; the product keeps one price per currency).
    pub price: Option<Money>,
    /// New prices in further currencies (version 2), replacing the stored ones.
    pub other_prices: Option<Vec<Money>>,
    /// Activate or deactivate.
    pub active: Option<bool>,
}

impl Product {
    /// Every price, the default first: version 2's `prices`.
    pub fn prices(&self) -> impl Iterator<Item = &Money> {
        std::iter::once(&self.price).chain(&self.other_prices)
    }
}

/// The prices in further currencies a product keeps after `changes`: replaced when they are
/// set, else the stored ones without any in a new default price's currency. Every repository
/// applies changes with this.
pub fn other_prices_after(stored: &[Money], changes: &ProductChanges) -> Vec<Money> {
    match (&changes.other_prices, &changes.price) {
        (Some(replaced), _) => replaced.clone(),
        (None, Some(price)) => stored
            .iter()
            .filter(|p| p.currency_code != price.currency_code)
            .cloned()
            .collect(),
        (None, None) => stored.to_vec(),
    }
}

/// What happened to a product, published as an integration event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProductEvent {
    /// A new product was added.
    Created(Product),
    /// Its name, description, category or active flag changed; the product after the change.
    Updated(Product),
    /// Its price changed.
    PriceChanged {
        /// The product after the change.
        product: Product,
        /// The price before.
        previous_price: Money,
    },
}

impl ProductEvent {
    /// The events an update from `before` to `after` raises: `Updated` when a descriptive
    /// field or the active flag changed, `PriceChanged` when the price did, both, or none
    /// (an update that changed nothing but the update time).
    pub fn of_update(before: &Product, after: &Product) -> Vec<Self> {
        let mut events = Vec::new();
        let described_differently = before.name != after.name
            || before.description != after.description
            || before.category != after.category
            || before.active != after.active;
        if described_differently {
            events.push(Self::Updated(after.clone()));
        }
        if before.price != after.price {
            events.push(Self::PriceChanged {
                product: after.clone(),
                previous_price: before.price.clone(),
            });
        }
        events
    }
}

/// What can go wrong in the catalog context. Mapped to gRPC in `grpc::status`.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    /// The request breaks field rules; every violation is listed.
    #[error("invalid request: {0}")]
    Invalid(Violations),
    /// No product with that id.
    #[error("product not found")]
    NotFound,
    /// Another CreateProduct with the same request id won the insert, and its product could
    /// not be read back; retrying the request returns it.
    #[error("a concurrent request with this request_id is in progress")]
    DuplicateRequest,
    /// Storage failed.
    #[error("internal: {0}")]
    Internal(Box<dyn std::error::Error + Send + Sync>),
}

impl From<Violations> for CatalogError {
    fn from(v: Violations) -> Self {
        Self::Invalid(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pan() -> Product {
        Product {
            id: "p1".into(),
            name: "Pan".into(),
            description: "Heavy.".into(),
            category: "kitchen".into(),
            price: Money {
                amount_minor: 100,
                currency_code: "USD".into(),
            },
            other_prices: Vec::new(),
            active: true,
            created_at: 1_000,
            updated_at: 1_000,
        }
    }

    #[test]
    fn an_update_that_changes_nothing_but_the_time_raises_no_event() {
        let after = Product {
            updated_at: 2_000,
            ..pan()
        };
        assert_eq!(ProductEvent::of_update(&pan(), &after), []);
    }

    #[test]
    fn each_descriptive_field_and_the_active_flag_raise_updated() {
        let changes = [
            Product {
                name: "Big pan".into(),
                ..pan()
            },
            Product {
                description: String::new(),
                ..pan()
            },
            Product {
                category: "outdoor".into(),
                ..pan()
            },
            Product {
                active: false,
                ..pan()
            },
        ];
        for after in changes {
            assert_eq!(
                ProductEvent::of_update(&pan(), &after),
                [ProductEvent::Updated(after.clone())]
            );
        }
    }

    #[test]
    fn a_new_price_raises_price_changed_with_the_previous_one_and_may_come_with_updated() {
        let repriced = Product {
            price: Money {
                amount_minor: 250,
                currency_code: "USD".into(),
            },
            ..pan()
        };
        assert_eq!(
            ProductEvent::of_update(&pan(), &repriced),
            [ProductEvent::PriceChanged {
                product: repriced.clone(),
                previous_price: pan().price,
            }]
        );
        let both = Product {
            name: "Big pan".into(),
            ..repriced
        };
        let events = ProductEvent::of_update(&pan(), &both);
        assert_eq!(events.len(), 2);
        assert_eq!(events[0], ProductEvent::Updated(both));
        assert!(matches!(events[1], ProductEvent::PriceChanged { .. }));
    }
}
