"""Waybill labels, parsed: what the thermal printer would print for real packed orders.

pack_order writes one ZPL label per parcel (activities/packing.py, `zpl_label`), at the waybill's
`label_path`. Rather than look for substrings, the label is read as a printer reads it: fields end
at ^FS, ^FO places a field, ^A sets its font, ^BC / ^B3 make it a barcode of the ^FD data that
follows, ^FH lets the data carry hex escapes, and ^CI chooses how the data's bytes are decoded
(Zebra code page 850 unless ^CI28 declares UTF-8). A ^ inside field data is the start of the next
command, as on the printer.

The label's layout, top to bottom: the tracking number in large print, its barcode, the recipient
(name and phone), the address, a summary (order, weight, the warehouse it ships from), then one
handling mark per line (FRAGILE, LIQUID...). Each check compares what is printed with an independent
source: the waybill row, the reservation, the order, the catalogue (samples/warehouse.yaml) and the
packing rules (process_defs/standard.yaml).
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from activities.carrier import CarrierActivities
from activities.packing import PackingActivities
from activities.picking import PickingActivities
from activities.stock import StockActivities
from activities.store import Store
from orderops.config import SAMPLES_DIR
from tests.store_helpers import STANDARD, items, payload, promise, run

CATALOGUE = {p["sku"]: p for p in yaml.safe_load((SAMPLES_DIR / "warehouse.yaml").read_text(encoding="utf-8"))["products"]}
PACKING = STANDARD["packing"]
# 4 x 6 in. at 203 dpi, the coarsest common thermal print head: every field must fit this.
LABEL_WIDTH, LABEL_HEIGHT = 4 * 203, 6 * 203


# -- a small ZPL reader ------------------------------------------------------------------------

COMMAND = re.compile(rb"\^([A-Z][A-Z0-9@])([^^]*)")


@dataclass(frozen=True)
class Field:
    x: int
    y: int
    data: str
    font_height: int | None = None  # ^A: a text field
    barcode: str | None = None  # ^BC (Code 128) or ^B3 (Code 39)
    barcode_height: int | None = None

    @property
    def height(self) -> int:
        return self.barcode_height if self.barcode else self.font_height or 0


def _params(raw: bytes) -> list[str]:
    return [p.strip() for p in raw.decode("ascii").split(",")]


def parse_zpl(raw: bytes) -> list[Field]:
    """The fields of one label format (^XA ... ^XZ), in the order they are sent."""
    body = raw.strip()
    assert body.startswith(b"^XA") and body.endswith(b"^XZ"), f"not one ZPL label: {raw[:40]!r}...{raw[-40:]!r}"
    body = body[3:-3]
    assert b"^XA" not in body and b"^XZ" not in body, "more than one label format in the file"
    charset = 0
    fields = []
    for chunk in body.split(b"^FS"):
        head, has_data, data = chunk.partition(b"^FD")
        position, font_height, barcode, barcode_height, hex_indicator = None, None, None, None, None
        for name, params in COMMAND.findall(head):
            name, values = name.decode("ascii"), _params(params)
            if name == "CI":
                charset = int(values[0])
            elif name == "FO":
                position = (int(values[0]), int(values[1]))
            elif name[0] == "A":  # ^A0N,h,w or ^A@N,h,w,font
                font_height = int(values[1])
            elif name == "BC":  # ^BCo,h,f,g,e,m
                barcode, barcode_height = name, int(values[1])
            elif name == "B3":  # ^B3o,e,h,f,g
                barcode, barcode_height = name, int(values[2])
            elif name == "FH":
                hex_indicator = (values[0] or "_").encode()
        if not has_data:
            continue  # settings only (^CI...), or whitespace between fields
        data = data.split(b"^", 1)[0]  # the printer reads a ^ as the next command, not as text
        if hex_indicator is not None:
            data = re.sub(re.escape(hex_indicator) + rb"([0-9A-Fa-f]{2})", lambda m: bytes([int(m.group(1), 16)]), data)
        assert position is not None, f"field without ^FO: {chunk!r}"
        text = data.decode("utf-8" if charset == 28 else "cp850")
        fields.append(Field(*position, text, font_height, barcode, barcode_height))
    return fields


@dataclass(frozen=True)
class WaybillLabel:
    tracking: Field  # the human-readable tracking number, above the barcode
    barcode: Field
    recipient: Field
    address: Field
    summary: Field
    marks: list[str]  # the handling marks, one per line, top to bottom
    fields: list[Field]

    @property
    def name_and_phone(self) -> tuple[str, str]:
        name, _, phone = self.recipient.data.rpartition(" ")
        return name, phone

    def summary_parts(self) -> dict[str, str]:
        found = re.fullmatch(r"Order (?P<order_id>\S+)\s+(?P<weight>\d+(?:\.\d+)?) kg\s+from (?P<warehouse>\S+)", self.summary.data)
        assert found, f"summary line not 'Order <id>  <weight> kg  from <warehouse>': {self.summary.data!r}"
        return found.groupdict()


def read_label(path: Path) -> WaybillLabel:
    fields = parse_zpl(path.read_bytes())
    barcodes = [f for f in fields if f.barcode]
    assert len(barcodes) == 1, f"expected one barcode, found {[(b.barcode, b.data) for b in barcodes]}"
    [barcode] = barcodes
    texts = sorted((f for f in fields if not f.barcode), key=lambda f: (f.y, f.x))
    above = [t.data for t in texts if t.y < barcode.y]
    below = [t for t in texts if t.y > barcode.y]
    assert len(above) == 1, f"expected the tracking number alone above the barcode, found {above}"
    assert len(below) >= 3, f"expected recipient, address and summary below the barcode, found {[t.data for t in below]}"
    recipient, address, summary, *marks = below
    return WaybillLabel(texts[0], barcode, recipient, address, summary, [m.data for m in marks], fields)


# -- real parcels --------------------------------------------------------------------------------


def pack(store: Store, **overrides) -> tuple[dict, list[dict]]:
    """An order reserved, picked and packed by standard.yaml's rules; its order and active waybills, by warehouse."""
    args = payload(**overrides)
    run(StockActivities(store).reserve_stock, {**args, "policy": STANDARD["stock_policy"]})
    run(PickingActivities(store).pick_items, args)
    run(PackingActivities(store).pack_order, {**args, "packing": PACKING})
    waybills = store.rows(
        "SELECT warehouse, tracking_no, weight_kg, label_path FROM waybills WHERE order_id = ? AND state = 'active' ORDER BY warehouse",
        args["order"]["order_id"],
    )
    assert waybills, "packing wrote no waybill"
    return args["order"], waybills


def reserved_lines(store: Store, order_id: str, warehouse: str) -> list[tuple[str, int]]:
    """What the reservation put in this warehouse's parcel: (sku, quantity)."""
    rows = store.rows(
        "SELECT sku, SUM(quantity) AS quantity FROM reservations WHERE order_id = ? AND warehouse = ? GROUP BY sku", order_id, warehouse
    )
    return [(r["sku"], r["quantity"]) for r in rows]


def marks_for(lines: list[tuple[str, int]]) -> list[str]:
    """The packing rules' labels for every goods class in the parcel, once each."""
    classes = {CATALOGUE[sku]["goods_class"] for sku, _ in lines}
    return sorted({label for c in classes for label in PACKING["classes"][c].get("labels", [])})


def weight_of(lines: list[tuple[str, int]]) -> float:
    return sum(CATALOGUE[sku]["weight_kg"] * quantity for sku, quantity in lines) + PACKING["box_weight_kg"]


def one_parcel(store: Store, **overrides) -> tuple[dict, dict, WaybillLabel]:
    order, waybills = pack(store, **overrides)
    assert len(waybills) == 1, waybills
    return order, waybills[0], read_label(Path(waybills[0]["label_path"]))


def address_words(address: dict) -> list[str]:
    parts = (address["province"], address["city"], address["district"], address["street"], address["postcode"])
    return " ".join(p for p in parts if p).split()


# -- what the label says -------------------------------------------------------------------------


def test_the_tracking_number_is_printed_and_is_all_the_barcode_encodes(store: Store):
    order, waybill, label = one_parcel(store)
    assert re.fullmatch(r"OO\d{6}\d{8}", waybill["tracking_no"])  # OO<yymmdd><8-digit sequence>
    assert Path(waybill["label_path"]) == store.labels_dir / f"{waybill['tracking_no']}.zpl"
    assert label.barcode.barcode == "BC" and label.barcode.data == waybill["tracking_no"]
    assert label.tracking.data == waybill["tracking_no"]
    assert order["order_id"] != waybill["tracking_no"]


def test_the_recipient_line_is_the_orders_name_and_phone_in_full(store: Store):
    # No masking is designed: the courier calls the recipient on this number.
    _, _, label = one_parcel(store, customer_name="Zhao Min Hui", phone="13912345678")
    assert label.name_and_phone == ("Zhao Min Hui", "13912345678")


@pytest.mark.parametrize(
    "address",
    [
        {"province": "Zhejiang", "city": "Hangzhou", "district": "Xihu", "street": "18 Wensan Road", "postcode": "310012"},
        {"province": "Jiangsu", "city": "Suzhou", "district": "", "street": "5 Ganjiang Road", "postcode": "215000"},
    ],
    ids=["with-district", "without-district"],
)
def test_the_address_line_is_the_orders_address_ending_with_its_postcode(store: Store, address: dict):
    _, _, label = one_parcel(store, address=address)
    assert label.address.data.split() == address_words(address)
    assert label.address.data.split()[-1] == address["postcode"]


@pytest.mark.parametrize(("province", "warehouse"), [("Shanghai", "SH"), ("Beijing", "BJ"), ("Guangdong", "GZ")])
def test_the_label_names_the_warehouse_the_parcel_ships_from(store: Store, province: str, warehouse: str):
    address = {"province": province, "city": "X", "district": "", "street": "1 Long Road", "postcode": "100000"}
    order, waybill, label = one_parcel(store, address=address, items=items(("TEA-001", 1)))
    [reserved_in] = {r["warehouse"] for r in store.rows("SELECT warehouse FROM reservations WHERE order_id = ?", order["order_id"])}
    assert label.summary_parts()["warehouse"] == waybill["warehouse"] == reserved_in == warehouse
    assert label.summary_parts()["order_id"] == order["order_id"]


@pytest.mark.parametrize(
    ("lines", "province", "marks"),
    [
        ([("TEA-001", 2), ("BOOK-006", 1)], "Shanghai", []),
        ([("TEA-001", 2), ("MUG-002", 1)], "Shanghai", ["FRAGILE"]),
        ([("MUG-002", 1), ("LAMP-007", 1)], "Shanghai", ["FRAGILE"]),
        ([("OIL-003", 1)], "Shanghai", ["LIQUID", "THIS SIDE UP"]),
        ([("MUG-002", 1), ("OIL-003", 1), ("RICE-004", 1)], "Shanghai", ["FRAGILE", "HEAVY", "LIQUID", "THIS SIDE UP"]),
        ([("LIGHTER-005", 2), ("KETTLE-010", 1)], "Guangdong", ["HAZARDOUS GOODS"]),
    ],
    ids=["general-only", "one-fragile-item", "two-fragile-skus", "liquid", "fragile-liquid-bulky", "hazardous"],
)
def test_the_handling_marks_are_exactly_those_of_the_goods_in_the_parcel(store: Store, lines, province: str, marks: list[str]):
    assert marks_for(lines) == marks  # the expectation agrees with standard.yaml's rules and the catalogue's classes
    address = {"province": province, "city": "X", "district": "", "street": "1 Long Road", "postcode": "100000"}
    _, _, label = one_parcel(store, items=items(*lines), address=address)
    assert sorted(label.marks) == marks  # each once, nothing else below the summary


@pytest.mark.parametrize(
    "lines", [[("TEA-001", 2), ("MUG-002", 1)], [("BOOK-006", 3), ("RICE-004", 1)], [("OIL-003", 4)]], ids=["1.25kg", "12.6kg", "2.6kg"]
)
def test_the_printed_weight_is_the_goods_plus_the_box(store: Store, lines):
    _, waybill, label = one_parcel(store, items=items(*lines))
    printed = float(label.summary_parts()["weight"])
    assert printed == pytest.approx(weight_of(lines), abs=0.0005)
    assert printed == pytest.approx(waybill["weight_kg"], abs=0.0005)


def test_each_parcel_of_a_split_order_has_a_label_of_its_own(store: Store):
    order, waybills = pack(store, items=items(("LIGHTER-005", 1), ("VASE-009", 1)))  # only GZ has lighters, only BJ vases
    assert [w["warehouse"] for w in waybills] == ["BJ", "GZ"]
    assert len({w["tracking_no"] for w in waybills}) == 2 and len({w["label_path"] for w in waybills}) == 2
    for waybill, other in zip(waybills, reversed(waybills), strict=True):
        label = read_label(Path(waybill["label_path"]))
        lines = reserved_lines(store, order["order_id"], waybill["warehouse"])
        assert label.barcode.data == label.tracking.data == waybill["tracking_no"]
        assert label.summary_parts()["warehouse"] == waybill["warehouse"]
        assert sorted(label.marks) == marks_for(lines)
        assert float(label.summary_parts()["weight"]) == pytest.approx(weight_of(lines), abs=0.0005)
        assert all(other["tracking_no"] not in f.data for f in label.fields)
    by_warehouse = {w["warehouse"]: read_label(Path(w["label_path"])).marks for w in waybills}
    assert by_warehouse == {"BJ": ["FRAGILE"], "GZ": ["HAZARDOUS GOODS"]}


def test_a_label_reprinted_for_a_new_address_keeps_its_parcel_and_shows_the_new_address(store: Store):
    order, [waybill] = pack(store, items=items(("TEA-001", 1), ("MUG-002", 1)))
    before = read_label(Path(waybill["label_path"]))
    args = {"order": order, "carriers": STANDARD["carriers"], "promise": promise()}
    run(CarrierActivities(store).book_carrier, args)
    moved = {"province": "Zhejiang", "city": "Hangzhou", "district": "Xihu", "street": "18 Wensan Road", "postcode": "310012"}
    run(CarrierActivities(store).handoff_to_courier, {**args, "order": {**order, "address": moved}})
    after = read_label(Path(waybill["label_path"]))
    assert after.address.data.split() == address_words(moved) != before.address.data.split()
    assert after.barcode.data == after.tracking.data == waybill["tracking_no"]
    assert (after.name_and_phone, after.summary_parts(), after.marks) == (before.name_and_phone, before.summary_parts(), before.marks)


def test_every_field_lies_on_the_4x6_label_and_none_overprints_another(store: Store):
    _, _, label = one_parcel(store, items=items(("MUG-002", 1), ("OIL-003", 1), ("RICE-004", 1)))  # four handling marks
    assert len(label.marks) == 4
    for field in label.fields:
        assert field.height > 0, field
        assert 0 <= field.x < LABEL_WIDTH and field.y >= 0 and field.y + field.height <= LABEL_HEIGHT, field
    stacked = sorted(label.fields, key=lambda f: f.y)
    for upper, lower in itertools.pairwise(stacked):
        assert upper.y + upper.height <= lower.y, (upper, lower)


# -- order text printed as written ----------------------------------------------------------------


def test_zpl_in_a_street_is_printed_as_text_and_adds_no_barcode(store: Store):
    street = "1 Main Street^FS^FO40,100^BCN,100,Y,N,N^FDOO26010199999999"
    address = {"province": "Shanghai", "city": "Shanghai", "district": "Pudong", "street": street, "postcode": "200120"}
    _, waybill, label = one_parcel(store, address=address)
    assert label.barcode.data == waybill["tracking_no"]
    assert label.address.data.split() == address_words(address)


def test_a_tilde_and_the_hex_indicator_in_order_text_are_printed_as_written(store: Store):
    # ~ starts a control command wherever it appears; an unescaped _5E would print as ^.
    name, street = "Li_5E~JA Wei", "7 Tilde~Lane_2"
    address = {"province": "Shanghai", "city": "Shanghai", "district": "", "street": street, "postcode": "200120"}
    _, waybill, label = one_parcel(store, customer_name=name, address=address)
    assert label.name_and_phone == (name, "13800138001")
    assert label.address.data.split() == address_words(address)
    assert b"~" not in Path(waybill["label_path"]).read_bytes()


def test_a_chinese_name_and_street_are_printed_as_written(store: Store):
    address = {"province": "Shanghai", "city": "上海", "district": "浦东", "street": "世纪大道88号", "postcode": "200120"}
    _, _, label = one_parcel(store, customer_name="李伟", address=address)
    assert label.name_and_phone == ("李伟", "13800138001")
    assert label.address.data.split() == address_words(address)


def test_the_reader_decodes_hex_escapes_and_utf8_and_stops_data_at_a_caret():
    """The reader itself, on labels written by hand: ^FH escapes and ^CI28, as zpl_label writes them, read back as written."""
    escaped = "^XA^CI28^FO10,10^A0N,30,30^FH^FDLi_5EWei 李伟^FS^FO10,50^BCN,80,Y,N,N^FDOO1^FS^XZ".encode()
    assert [(f.data, f.barcode) for f in parse_zpl(escaped)] == [("Li^Wei 李伟", None), ("OO1", "BC")]
    undeclared = "^XA^FO10,10^A0N,30,30^FD李伟^FS^XZ".encode()
    assert parse_zpl(undeclared)[0].data != "李伟"
    assert parse_zpl(b"^XA^FO10,10^A0N,30,30^FDLi^Wei^FS^XZ")[0].data == "Li"
