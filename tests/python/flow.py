"""register → login → browse → reserve, through Python stubs generated from proto/ at run time,
then the JSON edge's answer to counting stock of a product the catalog never had.

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


def main() -> None:
    sys.path.insert(0, str(generate(pathlib.Path(os.environ["POLYSHOP_PROTO_DIR"]))))
    from polyshop.catalog.v1 import catalog_pb2, catalog_pb2_grpc
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
    assert isinstance(product.price.amount_minor, int) and product.price.currency_code == "USD"

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
