"""`numalex explain`, section 6: the formula backwards. Checked against walks
over conv1's windows (test_explain's oracles), not against numalex's formulas."""
from test_explain import unused_input_rows, window_starts

from numalex.explain import backward_lines, explain, first_conv, rows_without_gradient


def sizes_giving(out, k, s, p):
    return [n for n in range(1, (out + 2) * s + k) if len(window_starts(n, k, s, p)) == out]


def test_rows_without_gradient_are_the_rows_no_window_reads():
    for variant in ("torchvision", "original"):
        conv = first_conv(variant)
        for n in (224, 225, 226, 227, 228, 63, 11):
            assert rows_without_gradient(n, conv) == \
                unused_input_rows(n, conv.kernel, conv.stride, conv.padding), (variant, n)


def test_the_sizes_that_collapse_onto_55_are_listed():
    text = "\n".join(backward_lines([224, 227]))
    torchvision = ", ".join(map(str, sizes_giving(55, 11, 4, 2)))     # 223 ... 226
    caffe = ", ".join(map(str, sizes_giving(55, 11, 4, 0)))           # 227 ... 230
    assert f"224, p=2 (torchvision): conv1 gives 55, which comes back from n = {torchvision}" \
        in text
    assert f"227, p=0 (original, bvlc): conv1 gives 55, which comes back from n = {caffe}" \
        in text
    assert "A 55-wide conv1 output arrives alike from 224 with p=2 and from 227 with p=0" \
        in text


def test_224_without_padding_leaves_row_223_without_gradient():
    assert unused_input_rows(224, 11, 4, 0) == [223]
    text = explain([224])
    assert "(54 - 1)*4 + 11 + 1 = 224 (1 row dropped by the stride): input row 223 gets " \
           "no gradient" in text
    assert "(55 - 1)*4 - 2*2 + 11 + 1 = 224 (1 row dropped by the stride): every input row " \
           "gets a gradient (the dropped row is padding)" in text
