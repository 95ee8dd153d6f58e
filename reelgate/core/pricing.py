"""Prices from RunningHub's public table (contract §11), in RH coins.

RunningHub bills in CNY and reports ``consumeCoins``; its account endpoint shows
``remainCoins: "99999"`` beside ``remainMoney: "999"``, so reelgate counts 100 coins per yuan
and keeps every amount an integer. Image-to-video is billed per output second (sound on/off);
video-edit per second of input video, rounded up to a whole second.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

COINS_PER_YUAN = 100


@dataclass(frozen=True)
class PriceRule:
    #: Coins per second with sound on (or the fixed rate when sound does not apply).
    per_second_sound: int
    #: Coins per second with sound off.
    per_second_silent: int
    #: True when billed by the input video's length rather than the requested duration.
    by_input_seconds: bool = False

    def rate(self, sound: bool) -> int:
        return self.per_second_sound if sound else self.per_second_silent

    def cost(self, seconds: float, sound: bool) -> int:
        return self.rate(sound) * math.ceil(seconds - 1e-9)


def yuan_text(coins: int) -> str:
    return f"{coins / COINS_PER_YUAN:.2f}"
