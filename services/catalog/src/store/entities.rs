//! sea-orm entities of the catalog database.

/// The `products` table.
pub mod product {
    use sea_orm::entity::prelude::*;

    /// One product row.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "products")]
    pub struct Model {
        /// UUIDv7; the list order and page key.
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        /// CreateProduct's idempotency key; unique when set.
        pub request_id: Option<String>,
        /// Name.
        pub name: String,
        /// Description.
        pub description: String,
        /// Category slug.
        pub category: String,
        /// Price in minor units.
        pub price_amount_minor: i64,
        /// ISO 4217 code.
        pub price_currency_code: String,
        /// Listed and orderable.
        pub active: bool,
        /// Epoch ms.
        pub created_at: i64,
        /// Epoch ms.
        pub updated_at: i64,
    }

    /// No relations are navigated through sea-orm.
    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// The `product_prices` table: a product's prices in further currencies (version 2), one row
/// per currency; the default price stays in `products`.
pub mod product_price {
    use sea_orm::entity::prelude::*;

    /// One price row.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "product_prices")]
    pub struct Model {
        /// The product.
        #[sea_orm(primary_key, auto_increment = false)]
        pub product_id: String,
        /// ISO 4217 code; one row per currency.
        #[sea_orm(primary_key, auto_increment = false)]
        pub currency_code: String,
        /// Price in minor units.
        pub amount_minor: i64,
    }

    /// No relations are navigated through sea-orm.
    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}
