"""register → login → browse → reserve, through Python stubs generated from proto/ at run time,
then one request the contract's buf.validate rules reject (caught by protovalidate on the client
from the contract alone, and answered INVALID_ARGUMENT with a BadRequest by the server), then the
JSON edge's answer to counting stock of a product the catalog never had.

Run by tests/system/python_client.rs against a running `polyshop up`. Exits non-zero on the
first failed expectation.
"""

import json
import os
import pathlib
import sys
import tempfile
import urllib.error
import urllib.request
import uuid

import grpc
import protovalidate
from grpc_tools import protoc

try:
    from importlib.resources import files
except ImportError:  # pragma: no cover
    from importlib_resources import files


def generate(proto_dir: pathlib.Path) -> pathlib.Path:
    out = pathlib.Path(tempfile.mkdtemp(prefix="polyshop-py-"))
    protos = [str(p.relative_to(proto_dir)) for p in proto_dir.rglob("*.proto")]
    args = [
        "grpc_tools.protoc",
        f"-I{proto_dir}",
        f"-I{files('grpc_tools') / '_proto'}",
        f"--python_out={out}",
        f"--grpc_python_out={out}",
        *protos,
    ]
    if protoc.main(args) != 0:
        sys.exit("protoc failed")
    return out


def violation_path(violation) -> str:
    """A protovalidate violation's field path as the server writes it: `email`, `items[0].quantity`.

    protovalidate hands back its own `buf.validate.Violation`; it is read through the stubs
    generated from our vendored validate.proto, so the two copies must agree on the wire too.
    """
    from buf.validate import validate_pb2

    proto = validate_pb2.Violation.FromString(violation.proto.to_binary())
    parts = []
    for element in proto.field.elements:
        part = element.field_name
        subscript = element.WhichOneof("subscript")
        if subscript == "string_key":
            part += f'["{element.string_key}"]'
        elif subscript == "bool_key":
            part += f"[{str(element.bool_key).lower()}]"
        elif subscript is not None:
            part += f"[{getattr(element, subscript)}]"
        parts.append(part)
    return ".".join(parts)


def bad_request_fields(error: grpc.RpcError) -> list:
    """The fields a gRPC error's google.rpc.BadRequest names (grpc-status-details-bin trailer)."""
    from google.rpc import error_details_pb2, status_pb2

    details = [v for k, v in (error.trailing_metadata() or ()) if k == "grpc-status-details-bin"]
    assert details, f"no google.rpc.Status details in the trailers: {error.code()} {error.details()}"
    status = status_pb2.Status.FromString(details[0])
    assert status.code == error.code().value[0], (status.code, error.code())
    fields = []
    for detail in status.details:
        if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            detail.Unpack(bad)
            fields.extend(v.field for v in bad.field_violations)
    return fields


def main() -> None:
    sys.path.insert(0, str(generate(pathlib.Path(os.environ["POLYSHOP_PROTO_DIR"]))))
    # The catalog's current version: v1 is deprecated (docs/operating.md, API versions).
    from polyshop.catalog.v2 import catalog_pb2, catalog_pb2_grpc
    from polyshop.inventory.v1 import errors_pb2, inventory_pb2, inventory_pb2_grpc
    from polyshop.user.v1 import user_pb2, user_pb2_grpc

    users = user_pb2_grpc.UserServiceStub(grpc.insecure_channel(os.environ["USER_ADDR"]))
    catalog = catalog_pb2_grpc.CatalogServiceStub(grpc.insecure_channel(os.environ["CATALOG_ADDR"]))
    inventory = inventory_pb2_grpc.InventoryServiceStub(
        grpc.insecure_channel(os.environ["INVENTORY_ADDR"])
    )

    name = "py" + uuid.uuid4().hex[:10]
    user = users.Register(
        user_pb2.RegisterRequest(
            username=name, email=f"{name}@example.com", password="correct horse battery"
        )
    ).user
    assert user.status == user_pb2.USER_STATUS_ACTIVE, user
    login = users.Login(user_pb2.LoginRequest(login=name, password="correct horse battery"))
    assert login.token_type == "Bearer" and login.access_token.count(".") == 2
    me = users.GetUser(
        user_pb2.GetUserRequest(user_id=user.user_id),
        metadata=[("authorization", f"Bearer {login.access_token}")],
    ).user
    assert me.username == name

    # One broken rule, from the contract: RegisterRequest.email carries `string.email`. The
    # client-side validator finds it from the generated descriptors alone, before anything is
    # sent; the server, sent the same request anyway, names the same field in a BadRequest.
    bad = user_pb2.RegisterRequest(
        username=name + "x", email="not an email address", password="correct horse battery"
    )
    violations = protovalidate.collect_violations(bad)
    assert [(violation_path(v), v.proto.rule_id) for v in violations] == [
        ("email", "string.email")
    ], violations
    try:
        protovalidate.validate(bad)
        sys.exit("protovalidate.validate must raise for a broken rule")
    except protovalidate.ValidationError as e:
        assert [violation_path(v) for v in e.violations] == ["email"], e
    try:
        users.Register(bad)
        sys.exit("the user service must refuse a request its contract rejects")
    except grpc.RpcError as e:
        assert e.code() == grpc.StatusCode.INVALID_ARGUMENT, (e.code(), e.details())
        assert bad_request_fields(e) == ["email"], (e.details(), bad_request_fields(e))
    # The same request, with the rule kept, passes the client-side check.
    good = user_pb2.RegisterRequest()
    good.CopyFrom(bad)
    good.email = f"{name}x@example.com"
    assert protovalidate.collect_violations(good) == [], protovalidate.collect_violations(good)

    print("contract rule caught by protovalidate and by the server (BadRequest email): ok")

    # Browse: walk every page of the catalog.
    products, token = [], ""
    while True:
        page = catalog.ListProducts(catalog_pb2.ListProductsRequest(page_size=3, page_token=token))
        products.extend(page.products)
        token = page.next_page_token
        if not token:
            break
    assert len(products) >= 5, f"demo catalog expected, got {len(products)}"
    assert len({p.product_id for p in products}) == len(products), "pages overlap"
    product = catalog.GetProduct(catalog_pb2.GetProductRequest(product_id=products[0].product_id)).product
    price = product.prices[0]
    assert isinstance(price.amount_minor, int) and price.currency_code == "USD", product

    before = inventory.GetStock(inventory_pb2.GetStockRequest(product_id=product.product_id)).stock
    assert before.quantity_available > 0, before

    # Reserve: INTERNAL, so a user token is refused and a service token is accepted.
    item = inventory_pb2.ReservationItem(product_id=product.product_id, quantity=1)
    request = inventory_pb2.ReserveStockRequest(reservation_id=str(uuid.uuid4()), items=[item])
    try:
        inventory.ReserveStock(request, metadata=[("authorization", f"Bearer {login.access_token}")])
        sys.exit("a user token must not reserve stock")
    except grpc.RpcError as e:
        assert e.code() == grpc.StatusCode.PERMISSION_DENIED, e
    service = [("authorization", f"Bearer {os.environ['SERVICE_TOKEN']}")]
    reservation = inventory.ReserveStock(request, metadata=service).reservation
    assert reservation.status == inventory_pb2.RESERVATION_STATUS_HELD, reservation
    again = inventory.ReserveStock(request, metadata=service).reservation
    assert again.reservation_id == reservation.reservation_id
    after = inventory.GetStock(inventory_pb2.GetStockRequest(product_id=product.product_id)).stock
    assert after.quantity_reserved == before.quantity_reserved + 1, (before, after)
    released = inventory.ReleaseReservation(
        inventory_pb2.ReleaseReservationRequest(reservation_id=reservation.reservation_id, reason="test"),
        metadata=service,
    ).reservation
    assert released.status == inventory_pb2.RESERVATION_STATUS_RELEASED

    print("register → login → browse → reserve: ok")

    # Stock is counted only for products the catalog created: an unknown id is a 404 whose
    # ErrorInfo carries the reason the inventory contract declares (ErrorReason in errors.proto).
    admin = users.Login(user_pb2.LoginRequest(login="admin", password=os.environ["ADMIN_PASSWORD"]))
    unknown = str(uuid.uuid4())
    put = urllib.request.Request(
        f"http://{os.environ['GATEWAY_ADDR']}/v1/stock/{unknown}",
        data=json.dumps({"quantityOnHand": 5}).encode(),
        method="PUT",
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {admin.access_token}"},
    )
    try:
        urllib.request.urlopen(put, timeout=10)
        sys.exit("stock of an unknown product must not be set")
    except urllib.error.HTTPError as e:
        assert e.code == 404, (e.code, e.read())
        error = json.loads(e.read())["error"]
    info = [d for d in error["details"] if d["@type"].endswith("google.rpc.ErrorInfo")]
    assert [(i["reason"], i["domain"]) for i in info] == [("PRODUCT_NOT_FOUND", "polyshop.inventory")], error
    # On the wire a reason is its ErrorReason value's name without the ERROR_REASON_ prefix.
    declared = errors_pb2.DESCRIPTOR.enum_types_by_name["ErrorReason"].values_by_name
    assert "ERROR_REASON_" + info[0]["reason"] in declared, list(declared)
    never = inventory.GetStock(inventory_pb2.GetStockRequest(product_id=unknown)).stock
    assert not never.HasField("update_time"), never

    print("PUT /v1/stock/<unknown> → 404 PRODUCT_NOT_FOUND: ok")


if __name__ == "__main__":
    main()
