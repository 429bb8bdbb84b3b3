"""The shared workload, so every scenario sends exactly the same prompts and token budget."""

from __future__ import annotations

from dataclasses import dataclass

# Short user questions; rendered with SmolLM2's chat template (and its default system prompt)
# each comes to about 35-45 input tokens.
PROMPTS: tuple[str, ...] = (
    "Why is the sky blue during the day but red at sunset?",
    "How does a refrigerator keep food cold?",
    "What is the difference between weather and climate?",
    "Explain how vaccines train the immune system.",
    "Why do cats purr, and is it always because they are happy?",
    "How do heavy airplanes stay up in the air?",
    "What causes the seasons on Earth?",
    "Give me three tips for sleeping better on busy nights.",
    "How does compound interest work? Give a small example.",
    "What is photosynthesis and why does it matter?",
    "Why does bread go stale, and how can I keep it fresh?",
    "How do noise-cancelling headphones remove sound?",
    "What is the difference between a virus and a bacterium?",
    "Explain a black hole to a curious ten-year-old.",
    "How should a complete beginner start learning the guitar?",
    "Why do we have leap years?",
    "What are the benefits of drinking enough water every day?",
    "How does a search engine decide which pages to show first?",
    "What should I pack for a three-day hiking trip?",
    "Why is the ocean salty while most lakes are fresh?",
    "How do bees make honey?",
    "Explain the difference between RAM and storage in a computer.",
    "What are some easy ways to reduce plastic waste at home?",
    "How does the moon cause the tides?",
    "Why do leaves change color in autumn?",
    "How can I prepare for a job interview next week?",
    "How do electric cars differ from gasoline cars?",
    "Why do onions make people cry when chopped?",
    "What is machine learning, explained without math?",
    "How can I make a simple tomato sauce for pasta?",
    "Why do we dream, and what might dreams be for?",
    "How does each chess piece move?",
)


@dataclass(frozen=True, slots=True)
class Workload:
    """How many requests each scenario sends and how long every generation is.

    `concurrencies` are (1, many, most): one stream, the main batch, and the memory check.
    """

    max_new_tokens: int
    naive_requests: int
    batch_size: int
    concurrencies: tuple[int, ...]
    sequential_requests: int = 2  # requests sent one after another at concurrency 1

    @classmethod
    def full(cls, naive_requests: int = 4) -> Workload:
        return cls(
            max_new_tokens=128,
            naive_requests=naive_requests,
            batch_size=16,
            concurrencies=(1, 16, 32),
        )

    @classmethod
    def quick(cls) -> Workload:
        return cls(
            max_new_tokens=16,
            naive_requests=2,
            batch_size=4,
            concurrencies=(1, 4, 8),
            sequential_requests=2,
        )

    @property
    def many(self) -> int:
        return self.batch_size

    @property
    def most(self) -> int:
        return max(self.concurrencies)

    def requests_at(self, concurrency: int) -> int:
        """Concurrency 1 sends `sequential_requests` in turn; N > 1 sends N at once."""
        return self.sequential_requests if concurrency == 1 else concurrency


@dataclass(frozen=True, slots=True)
class Probes:
    """Sizes of the engine probes of issue 12 (see bench.probes)."""

    running: int  # streams already decoding when the burst arrives
    running_tokens: int
    newcomers: int  # long prompts arriving at once
    newcomer_prompt_tokens: int
    newcomer_tokens: int
    system_prompt_tokens: int  # the repeated conversation's system prompt
    turns: int

    @classmethod
    def full(cls) -> Probes:
        return cls(4, 256, 16, 413, 16, 500, 4)

    @classmethod
    def quick(cls) -> Probes:
        return cls(2, 48, 4, 413, 4, 500, 2)


def prompt(index: int) -> str:
    return PROMPTS[index % len(PROMPTS)]


def chat(index: int) -> list[dict[str, str]]:
    """The i-th request as chat messages (the model's template adds its system prompt)."""
    return [{"role": "user", "content": prompt(index)}]
