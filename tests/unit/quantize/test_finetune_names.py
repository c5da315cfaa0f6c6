"""Exported node names lead back to the torch modules that made them."""

import pytest

from centernet.quantize.finetune import module_path


@pytest.mark.parametrize(
    ("node", "module"),
    [
        ("/network/base/level1/level1.0/Conv", "base.level1.0"),
        ("/network/base/base_layer/base_layer.0/Conv", "base.base_layer.0"),
        ("/network/base/level3/tree1/tree2/conv1/Conv", "base.level3.tree1.tree2.conv1"),
        ("/network/dla_up/ida_1/proj_2/proj_2.0/Conv", "dla_up.ida_1.proj_2.0"),
        ("/network/dla_up/ida_0/up_1/ConvTranspose", "dla_up.ida_0.up_1"),
        ("/network/hm/hm.2/Conv", "hm.2"),
    ],
)
def test_module_path(node, module):
    assert module_path(node) == module
