//! sea-orm entities of the payment database.

/// The `payments` table.
pub mod payment {
    use sea_orm::entity::prelude::*;

    /// One payment row.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "payments")]
    pub struct Model {
        /// UUIDv7.
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        /// The order.
        pub order_id: String,
        /// Who pays.
        pub user_id: String,
        /// Amount in minor units.
        pub amount_minor: i64,
        /// ISO 4217.
        pub currency_code: String,
        /// `captured` | `declined` | `refunded`.
        pub status: String,
        /// Refunded minor units.
        pub refunded_minor: i64,
        /// Provider decline code, or empty.
        pub decline_code: String,
        /// Last four card digits.
        pub card_last4: String,
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

/// The `invoices` table.
pub mod invoice {
    use sea_orm::entity::prelude::*;

    /// The invoice of one captured payment.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "invoices")]
    pub struct Model {
        /// The payment.
        #[sea_orm(primary_key, auto_increment = false)]
        pub payment_id: String,
        /// Gap-free sequence number.
        pub number: i64,
        /// Epoch ms.
        pub issued_at: i64,
    }

    /// No relations are navigated through sea-orm.
    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// The `invoice_lines` table.
pub mod invoice_line {
    use sea_orm::entity::prelude::*;

    /// One line of an invoice; its currency is the payment's.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "invoice_lines")]
    pub struct Model {
        /// The payment.
        #[sea_orm(primary_key, auto_increment = false)]
        pub payment_id: String,
        /// 0-based position.
        #[sea_orm(primary_key, auto_increment = false)]
        pub line_no: i32,
        /// What it is.
        pub description: String,
        /// Units.
        pub quantity: i32,
        /// Price per unit in minor units.
        pub unit_price_minor: i64,
    }

    /// No relations are navigated through sea-orm.
    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}
