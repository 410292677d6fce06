"""Suite-wide ordering: the end-to-end files run first.

``scripts/test.sh`` spreads whole files over the cores (pytest-xdist ``--dist loadfile``) in collection order.
The few pipeline files take minutes each and the rest seconds, so starting the long ones first lets the short
ones fill the gaps instead of one long file running alone at the end.
"""


def _is_end_to_end(item) -> bool:
    return item.get_closest_marker("slow") is not None


def pytest_collection_modifyitems(config, items):
    end_to_end_files = {item.path for item in items if _is_end_to_end(item)}
    # A stable sort: within each group the files, and the tests in a file, keep their order.
    items.sort(key=lambda item: item.path not in end_to_end_files)
