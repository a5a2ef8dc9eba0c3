"""The output-size formula by hand: why AlexNet's 224 gives 54.25 and 227 gives 55.

A convolution slides a k x k window over the (padded) input in steps of s.
Count the window positions yourself, then let numalex do the same count.

    python examples/formula_by_hand.py
"""
import numalex


def count_windows(n, k, s, p):
    """Walk the window along one axis of n + 2p padded rows; count where it fits."""
    count, start = 0, 0
    while start + k <= n + 2 * p:
        count += 1
        start += s
    return count


# conv1 of AlexNet: an 11x11 kernel moving 4 pixels at a time
k, s = 11, 4
for n, p in [(224, 0), (227, 0), (224, 2)]:
    exact = (n + 2 * p - k) / s + 1                    # the formula before rounding
    walked = count_windows(n, k, s, p)                 # positions that really fit
    print(f"n={n}, p={p}: (n + 2p - k)/s + 1 = {exact:g}; windows that fit: {walked}")
    assert walked == int(exact) == numalex.conv_output_size(n, k, stride=s, padding=p)

# numalex keeps the working, including what the rounding threw away
print(numalex.size_arithmetic(224, 11, stride=4, padding=2).text)
print(numalex.size_arithmetic(54, 3, stride=2, ceil_mode=True).text, "(Caffe's pool1 at 224)")

# a fractional count means rows at the end that no window reads
a = numalex.size_arithmetic(224, 11, stride=4)
last_read = (a.out - 1) * s + k - 1
print(f"at 224 without padding the last window ends on row {last_read}: "
      f"{a.unused_rows} row(s) never read")
print("formula by hand agrees with numalex")
