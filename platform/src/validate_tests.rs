use polyshop::{
    api::v1::Money,
    catalog::v1::{
        BatchGetProductsRequest, CreateProductRequest, ErrorReason, ListProductsRequest,
        UpdateProductRequest,
    },
    inventory::v1::{ReservationItem, ReserveStockRequest},
    order::v1::{OrderStatus, UpdateOrderStatusRequest},
    user::v1::{ChangeUserStatusRequest, RegisterRequest},
};
use tonic::Code;
use tonic_types::StatusExt;

use super::*;

fn fields(v: &Violations) -> Vec<(&str, &str)> {
    v.iter().map(|(f, d)| (f.as_str(), d.as_str())).collect()
}

fn product() -> CreateProductRequest {
    CreateProductRequest {
        request_id: String::new(),
        name: "Mug".into(),
        description: String::new(),
        category: "kitchen".into(),
        price: Some(Money {
            amount_minor: 1299,
            currency_code: "EUR".into(),
        }),
        active: true,
    }
}

#[test]
fn every_rule_in_the_contracts_is_supported() {
    let plans = Plans::build(contract::pool()).unwrap_or_else(|e| panic!("{e}"));
    assert!(
        plans
            .0
            .get("polyshop.catalog.v1.CreateProductRequest")
            .is_some_and(|p| !p.is_empty()),
        "the contracts' rules are read"
    );
}

#[test]
fn a_valid_request_has_no_violations() {
    assert!(violations(&product()).is_empty());
    assert!(violations(&ListProductsRequest::default()).is_empty());
}

#[test]
fn lengths_patterns_and_required_messages_are_named_by_field() {
    let request = CreateProductRequest {
        name: String::new(),
        category: "Kitchen Stuff".into(),
        price: None,
        request_id: "r".repeat(129),
        ..product()
    };
    assert_eq!(
        fields(&violations(&request)),
        vec![
            ("request_id", "must be at most 128 characters"),
            ("name", "must be 1–200 characters"),
            ("category", "must match the pattern ^[a-z0-9-]*$"),
            ("price", "is required"),
        ]
    );
}

#[test]
fn nested_messages_are_checked_under_their_path() {
    let request = CreateProductRequest {
        price: Some(Money {
            amount_minor: -1,
            currency_code: "eur".into(),
        }),
        ..product()
    };
    assert_eq!(
        fields(&violations(&request)),
        vec![
            ("price.amount_minor", "must be at least 0"),
            ("price.currency_code", "must match the pattern ^[A-Z]{3}$"),
        ]
    );
}

#[test]
fn ignore_if_zero_and_optional_fields_are_checked_only_when_set() {
    // An empty category filter means "all"; an unset optional name means "unchanged".
    let list = ListProductsRequest {
        category: String::new(),
        ..Default::default()
    };
    assert!(violations(&list).is_empty());
    let update = UpdateProductRequest {
        product_id: "p1".into(),
        ..Default::default()
    };
    assert!(violations(&update).is_empty());
    let update = UpdateProductRequest {
        product_id: "p1".into(),
        name: Some(String::new()),
        ..Default::default()
    };
    assert_eq!(
        fields(&violations(&update)),
        vec![("name", "must be 1–200 characters")]
    );
}

#[test]
fn ranges_and_page_sizes() {
    let list = ListProductsRequest {
        page_size: 101,
        page_token: "not a token!".into(),
        ..Default::default()
    };
    assert_eq!(
        fields(&violations(&list)),
        vec![
            ("page_size", "must be between 0 and 100"),
            ("page_token", "must match the pattern ^[A-Za-z0-9_-]*$"),
        ]
    );
}

#[test]
fn lists_count_their_items_and_check_each_one() {
    let batch = BatchGetProductsRequest {
        product_ids: vec!["a".into(), String::new()],
    };
    assert_eq!(
        fields(&violations(&batch)),
        vec![("product_ids[1]", "is required")]
    );
    let batch = BatchGetProductsRequest {
        product_ids: vec!["a".into(); 101],
    };
    assert_eq!(
        fields(&violations(&batch)),
        vec![("product_ids", "must have at most 100 items")]
    );
    let reserve = ReserveStockRequest {
        reservation_id: "r1".into(),
        items: vec![ReservationItem {
            product_id: "p\u{7}".into(),
            quantity: 0,
        }],
    };
    assert_eq!(
        fields(&violations(&reserve)),
        vec![
            (
                "items[0].product_id",
                "must match the pattern ^[^\\p{Cc}]*$"
            ),
            ("items[0].quantity", "must be between 1 and 10000"),
        ]
    );
    let empty = ReserveStockRequest {
        reservation_id: "r1".into(),
        items: Vec::new(),
    };
    assert_eq!(
        fields(&violations(&empty)),
        vec![("items", "must have 1–50 items")]
    );
}

#[test]
fn emails_and_enums() {
    let register = RegisterRequest {
        username: "jane".into(),
        email: "jane at example.com".into(),
        password: "correct horse battery".into(),
        display_name: String::new(),
    };
    assert_eq!(
        fields(&violations(&register)),
        vec![("email", "is not a valid email address")]
    );
    let register = RegisterRequest {
        email: "jane@example.com".into(),
        ..register
    };
    assert!(violations(&register).is_empty());

    let status = ChangeUserStatusRequest {
        user_id: "u1".into(),
        status: 0,
        reason: String::new(),
    };
    assert_eq!(
        fields(&violations(&status)),
        vec![("status", "is required")]
    );
    let status = ChangeUserStatusRequest {
        status: 42,
        ..status
    };
    assert_eq!(
        fields(&violations(&status)),
        vec![("status", "must be one of the values the contract defines")]
    );

    let order = UpdateOrderStatusRequest {
        order_id: "o1".into(),
        status: OrderStatus::Pending as i32,
        tracking_number: String::new(),
    };
    assert_eq!(
        fields(&violations(&order)),
        vec![(
            "status",
            "must be one of ORDER_STATUS_SHIPPED, ORDER_STATUS_DELIVERED"
        )]
    );
}

#[test]
fn check_answers_invalid_argument_with_a_bad_request() {
    let status = check(
        &CreateProductRequest {
            price: None,
            ..product()
        },
        ErrorReason::InvalidArgument,
    )
    .expect_err("invalid");
    assert_eq!(status.code(), Code::InvalidArgument);
    let details = status.get_error_details();
    let bad = details.bad_request().expect("bad request detail");
    assert_eq!(bad.field_violations.len(), 1);
    assert_eq!(bad.field_violations[0].field, "price");
    assert_eq!(bad.field_violations[0].description, "is required");
    assert_eq!(
        details.error_info().map(|i| i.reason.as_str()),
        Some("INVALID_ARGUMENT")
    );
    assert!(check(&product(), ErrorReason::InvalidArgument).is_ok());
}

#[test]
fn an_unsupported_rule_is_reported_not_skipped() {
    // A pool whose only rule is `string.prefix`, which this module does not evaluate.
    use prost::Message as _;
    use prost_types::{
        DescriptorProto, FieldDescriptorProto, FileDescriptorProto, FileDescriptorSet,
        field_descriptor_proto::Type,
    };
    let base = prost_types::FileDescriptorSet::decode(polyshop::FILE_DESCRIPTOR_SET)
        .expect("descriptor set");
    let validate = base
        .file
        .iter()
        .find(|f| f.name() == "buf/validate/validate.proto")
        .expect("validate.proto is embedded")
        .clone();
    let mut files: Vec<FileDescriptorProto> = base
        .file
        .iter()
        .filter(|f| f.name().starts_with("google/protobuf/"))
        .cloned()
        .collect();
    files.push(validate);
    let mut pool = DescriptorPool::new();
    pool.add_file_descriptor_set(FileDescriptorSet { file: files })
        .expect("pool");
    let ext = pool
        .get_extension_by_name("buf.validate.field")
        .expect("extension");
    let mut options = DynamicMessage::new(
        pool.get_message_by_name("google.protobuf.FieldOptions")
            .expect("FieldOptions"),
    );
    let rules_desc = pool
        .get_message_by_name("buf.validate.FieldRules")
        .expect("FieldRules");
    let string_desc = pool
        .get_message_by_name("buf.validate.StringRules")
        .expect("StringRules");
    let mut string = DynamicMessage::new(string_desc);
    string.set_field_by_name("prefix", Value::String("x".into()));
    let mut rules = DynamicMessage::new(rules_desc);
    rules.set_field_by_name("string", Value::Message(string));
    options.set_extension(&ext, Value::Message(rules));
    let file = FileDescriptorProto {
        name: Some("polyshop/test/v1/test.proto".into()),
        package: Some("polyshop.test.v1".into()),
        dependency: vec!["buf/validate/validate.proto".into()],
        syntax: Some("proto3".into()),
        message_type: vec![DescriptorProto {
            name: Some("Thing".into()),
            field: vec![FieldDescriptorProto {
                name: Some("name".into()),
                number: Some(1),
                r#type: Some(Type::String as i32),
                json_name: Some("name".into()),
                ..Default::default()
            }],
            ..Default::default()
        }],
        ..Default::default()
    };
    // prost_types drops extensions, so the options go in through reflection.
    let mut file = DynamicMessage::decode(
        pool.get_message_by_name("google.protobuf.FileDescriptorProto")
            .expect("FileDescriptorProto"),
        file.encode_to_vec().as_slice(),
    )
    .expect("file");
    let field = file
        .get_field_by_name_mut("message_type")
        .and_then(|v| v.as_list_mut())
        .and_then(|l| l.first_mut())
        .and_then(|v| v.as_message_mut())
        .and_then(|m| m.get_field_by_name_mut("field"))
        .and_then(|v| v.as_list_mut())
        .and_then(|l| l.first_mut())
        .and_then(|v| v.as_message_mut())
        .expect("the field");
    field.set_field_by_name("options", Value::Message(options));
    pool.decode_file_descriptor_proto(file.encode_to_vec().as_slice())
        .expect("test file");
    let err = Plans::build(&pool).expect_err("prefix is not supported");
    assert_eq!(err.field, "polyshop.test.v1.Thing.name");
    assert_eq!(err.rule, "string.prefix");
}
