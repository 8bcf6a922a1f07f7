//! `polyshop.catalog.v2.CatalogService`: the same use cases as version 1, over the same
//! repository, with a price per currency. Errors are version 1's (`polyshop.catalog.v1
//! .ErrorReason`, one table in `status.rs`); only price violations are renamed to this
//! version's fields.

use std::sync::Arc;

use polyshop::catalog::v2::{self as pb, catalog_service_server::CatalogService};
use tonic::{Request, Response, Status};

use super::{convert, convert_v2};
use crate::app::{self, CatalogRepository};

/// The catalog service's version 2 gRPC handlers.
#[derive(Debug)]
pub struct CatalogV2Grpc<R> {
    repo: Arc<R>,
}

impl<R> CatalogV2Grpc<R> {
    /// Handlers over `repo`, the one version 1 serves too.
    pub fn new(repo: Arc<R>) -> Self {
        Self { repo }
    }
}

type Reply<T> = Result<Response<T>, Status>;

#[tonic::async_trait]
impl<R: CatalogRepository> CatalogService for CatalogV2Grpc<R> {
    async fn create_product(
        &self,
        request: Request<pb::CreateProductRequest>,
    ) -> Reply<pb::CreateProductResponse> {
        let created =
            app::create_product(self.repo.as_ref(), convert_v2::draft(request.into_inner()))
                .await
                .map_err(|e| convert_v2::price_fields(e, "prices"))?;
        tracing::info!(product_id = %created.product.id, replayed = created.replayed, "product created");
        Ok(Response::new(pb::CreateProductResponse {
            product: Some(convert_v2::product(created.product)),
        }))
    }

    async fn get_product(
        &self,
        request: Request<pb::GetProductRequest>,
    ) -> Reply<pb::GetProductResponse> {
        let id = convert::product_id(&request.get_ref().product_id)?;
        let product = app::get_product(self.repo.as_ref(), id).await?;
        Ok(Response::new(pb::GetProductResponse {
            product: Some(convert_v2::product(product)),
        }))
    }

    async fn batch_get_products(
        &self,
        request: Request<pb::BatchGetProductsRequest>,
    ) -> Reply<pb::BatchGetProductsResponse> {
        let batch =
            app::batch_get_products(self.repo.as_ref(), request.into_inner().product_ids).await?;
        Ok(Response::new(pb::BatchGetProductsResponse {
            products: batch
                .products
                .into_iter()
                .map(convert_v2::product)
                .collect(),
            not_found_ids: batch.not_found_ids,
        }))
    }

    async fn list_products(
        &self,
        request: Request<pb::ListProductsRequest>,
    ) -> Reply<pb::ListProductsResponse> {
        let list = convert_v2::list_request(request.into_inner());
        let (products, next) = app::list_products(self.repo.as_ref(), list).await?;
        Ok(Response::new(pb::ListProductsResponse {
            products: products.into_iter().map(convert_v2::product).collect(),
            next_page_token: next,
        }))
    }

    async fn update_product(
        &self,
        request: Request<pb::UpdateProductRequest>,
    ) -> Reply<pb::UpdateProductResponse> {
        let r = request.into_inner();
        let id = convert::product_id(&r.product_id)?.to_owned();
        let product = app::update_product(self.repo.as_ref(), &id, convert_v2::changes(r))
            .await
            .map_err(|e| convert_v2::price_fields(e, "prices.prices"))?;
        tracing::info!(product_id = %id, "product updated");
        Ok(Response::new(pb::UpdateProductResponse {
            product: Some(convert_v2::product(product)),
        }))
    }
}
