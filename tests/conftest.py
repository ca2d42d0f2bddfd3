"""Suite-wide test ordering: the tests marked `slow` run first.

`make test` spreads the suite over the cores with pytest-xdist. A slow test that is collected late would start
when the other workers have nearly finished and leave them idle; started first, the demo smoke test and the nvcc
compile overlap with the many short tests instead. Without xdist the order changes nothing but the order."""


def pytest_collection_modifyitems(session, config, items):
    items.sort(key=lambda item: item.get_closest_marker('slow') is None)      # stable: otherwise collection order
