//! `polyshop.catalog.v1.CatalogService`: each handler converts, calls one use case, converts
//! back. Access (admin writes, public reads) is enforced by the contract before these run, so
//! no handler needs a principal.

use std::sync::Arc;

use polyshop::catalog::v1::{self as pb, catalog_service_server::CatalogService};
use tonic::{Request, Response, Status};

use super::convert;
use crate::{
    app::{self, CatalogRepository},
    domain::CatalogError,
};

/// The catalog service's gRPC handlers.
#[derive(Debug)]
pub struct CatalogGrpc<R> {
    repo: Arc<R>,
}

impl<R> CatalogGrpc<R> {
    /// Handlers over `repo`.
    pub fn new(repo: Arc<R>) -> Self {
        Self { repo }
    }
}

type Reply<T> = Result<Response<T>, Status>;

#[tonic::async_trait]
impl<R: CatalogRepository> CatalogService for CatalogGrpc<R> {
    async fn create_product(
        &self,
        request: Request<pb::CreateProductRequest>,
    ) -> Reply<pb::CreateProductResponse> {
        let created =
            app::create_product(self.repo.as_ref(), convert::draft(request.into_inner())).await?;
        tracing::info!(product_id = %created.product.id, replayed = created.replayed, "product created");
        Ok(Response::new(pb::CreateProductResponse {
            product: Some(convert::product(created.product)),
        }))
    }

    async fn get_product(
        &self,
        request: Request<pb::GetProductRequest>,
    ) -> Reply<pb::GetProductResponse> {
        let id = convert::product_id(&request.get_ref().product_id)?;
        let product = app::get_product(self.repo.as_ref(), id).await?;
        Ok(Response::new(pb::GetProductResponse {
            product: Some(convert::product(product)),
        }))
    }

    async fn batch_get_products(
        &self,
        request: Request<pb::BatchGetProductsRequest>,
    ) -> Reply<pb::BatchGetProductsResponse> {
        let batch =
            app::batch_get_products(self.repo.as_ref(), request.into_inner().product_ids).await?;
        Ok(Response::new(pb::BatchGetProductsResponse {
            products: batch.products.into_iter().map(convert::product).collect(),
            not_found_ids: batch.not_found_ids,
        }))
    }

    async fn list_products(
        &self,
        request: Request<pb::ListProductsRequest>,
    ) -> Reply<pb::ListProductsResponse> {
        let list = convert::list_request(request.into_inner());
        let (products, next) = app::list_products(self.repo.as_ref(), list).await?;
        Ok(Response::new(pb::ListProductsResponse {
            products: products.into_iter().map(convert::product).collect(),
            next_page_token: next,
        }))
    }

    async fn update_product(
        &self,
        request: Request<pb::UpdateProductRequest>,
    ) -> Reply<pb::UpdateProductResponse> {
        let r = request.into_inner();
        let id = convert::product_id(&r.product_id)?.to_owned();
        let product = app::update_product(self.repo.as_ref(), &id, convert::changes(r)).await?;
        tracing::info!(product_id = %id, "product updated");
        Ok(Response::new(pb::UpdateProductResponse {
            product: Some(convert::product(product)),
        }))
    }
}

// Handlers return `CatalogError` through `?`; the conversion lives in `status.rs`.
const _: fn(CatalogError) -> Status = Status::from;
