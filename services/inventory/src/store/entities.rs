//! sea-orm entities of the inventory database.

/// The `stock` table.
pub mod stock {
    use sea_orm::entity::prelude::*;

    /// Stock of one product.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "stock")]
    pub struct Model {
        /// The product.
        #[sea_orm(primary_key, auto_increment = false)]
        pub product_id: String,
        /// Units in stock, reserved ones included.
        pub on_hand: i32,
        /// Units held by HELD reservations.
        pub reserved: i32,
        /// Epoch ms.
        pub updated_at: i64,
    }

    /// No relations are navigated through sea-orm.
    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// The `reservations` table.
pub mod reservation {
    use sea_orm::entity::prelude::*;

    /// One reservation row.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "reservations")]
    pub struct Model {
        /// Caller-chosen id.
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        /// `held` | `confirmed` | `released`.
        pub status: String,
        /// Epoch ms.
        pub expires_at: i64,
        /// Epoch ms.
        pub created_at: i64,
        /// Epoch ms.
        pub updated_at: i64,
        /// Why it was released; empty otherwise.
        pub release_reason: String,
    }

    /// No relations are navigated through sea-orm.
    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// The `reservation_items` table.
pub mod reservation_item {
    use sea_orm::entity::prelude::*;

    /// One product of a reservation.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "reservation_items")]
    pub struct Model {
        /// The reservation.
        #[sea_orm(primary_key, auto_increment = false)]
        pub reservation_id: String,
        /// The product.
        #[sea_orm(primary_key, auto_increment = false)]
        pub product_id: String,
        /// Units held.
        pub quantity: i32,
    }

    /// No relations are navigated through sea-orm.
    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}
