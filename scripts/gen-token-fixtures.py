#!/usr/bin/env python3
"""Generate the token-count fixture vectors for the token-service tests.

Runs OpenAI's reference tokenizer (Python `tiktoken`) over a fixed, seeded set
of texts and writes one JSON object per line:

    {"encoding": "o200k_base", "category": "english", "text": "...",
     "repeat": 1, "suffix": "", "tokens": 12}

The counted text is `text * repeat + suffix` (long runs are stored this way to
keep the file small). Counts are `encode_ordinary`, i.e. special-token strings
such as "<|endoftext|>" are counted as ordinary text, as the service does.

Works offline: tiktoken normally downloads its BPE files; this script points
TIKTOKEN_CACHE_DIR at a temporary directory holding the `.tiktoken` files that
ship inside the tiktoken-rs crate sources (the cache file name is the SHA-1 of
the download URL, and tiktoken verifies each file's SHA-256 on load).

Usage: .venv/bin/python scripts/gen-token-fixtures.py \
           [--out services/token-service/tests/fixtures/tiktoken_vectors.jsonl]
"""

import argparse
import glob
import hashlib
import json
import os
import random
import shutil
import sys
import tempfile

ENCODINGS = ["o200k_base", "cl100k_base", "p50k_base", "r50k_base"]
BASE_URL = "https://openaipublic.blob.core.windows.net/encodings/"


def prepare_offline_cache() -> str:
    """Copies the crate-shipped BPE files into a tiktoken cache directory."""
    pattern = os.path.expanduser("~/.cargo/registry/src/*/tiktoken-rs-*/assets")
    dirs = sorted(glob.glob(pattern))
    if not dirs:
        sys.exit(f"no tiktoken-rs sources under {pattern}: run `cargo fetch` first")
    assets = dirs[-1]
    cache = tempfile.mkdtemp(prefix="tiktoken-cache-")
    for name in ["o200k_base", "cl100k_base", "p50k_base", "r50k_base"]:
        url = f"{BASE_URL}{name}.tiktoken"
        key = hashlib.sha1(url.encode()).hexdigest()
        shutil.copyfile(os.path.join(assets, f"{name}.tiktoken"), os.path.join(cache, key))
    os.environ["TIKTOKEN_CACHE_DIR"] = cache
    return cache


def fixed_texts():
    """(category, text, repeat, suffix) tuples written by hand."""
    t = []
    add = lambda cat, text, repeat=1, suffix="": t.append((cat, text, repeat, suffix))
    # English
    add("english", "Hello, world!")
    add("english", "The quick brown fox jumps over the lazy dog.")
    add("english", "I'm sure they'll say it's fine, but we've seen what you'd do.")
    add("english", "DON'T SHOUT. It's NOT polite; THEY'RE listening.")
    add("english", "  leading spaces and trailing spaces   ")
    add("english", "Line one\nLine two\r\nLine three\n\n\nLine after blank lines")
    add("english", "Tabs\tbetween\t\twords\tand a trailing tab\t")
    add("english", "A sentence with a very long word: pneumonoultramicroscopicsilicovolcanoconiosis.")
    add("english", "e-mail: someone@example.com, url: https://example.com/a/b?c=d&e=f#g")
    add("english", "")
    add("english", " ")
    add("english", "a")
    add("english", "\n")
    add("english", "Mr. O'Neil's dog's bone — isn't it?")
    add("english", "Quotes: \"double\", 'single', `back`, «guillemets», “curly”.")
    # Code
    add("code", "fn main() {\n    println!(\"Hello, {}!\", name);\n}\n")
    add("code", "def f(x: int) -> int:\n    return x ** 2  # square\n\nprint(f(12))\n")
    add("code", "for (let i = 0; i < arr.length; i++) { sum += arr[i]; }")
    add("code", "#include <stdio.h>\nint main(void){printf(\"%d\\n\", 42);return 0;}")
    add("code", "SELECT id, name FROM users WHERE created_at > '2024-01-01' ORDER BY id DESC LIMIT 10;")
    add("code", "    if x:\n        y = {'a': [1, 2, 3], 'b': None}\n    else:\n\tpass\n")
    add("code", "<div class=\"row\"><span id='x'>&amp; &lt;tag&gt;</span></div>")
    add("code", "$ cargo build --release && ./target/release/app --port=8080 2>&1 | tee log.txt")
    add("code", "x=>x*2;y=>{return y/3};//comment\n/* block */")
    add("code", "matrix[i][j] = matrix[i-1][j] + matrix[i][j-1] - matrix[i-1][j-1];")
    # JSON
    add("json", json.dumps({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}))
    add("json", json.dumps({"a": 1, "b": [True, False, None], "c": {"d": 1.5e-7}}, indent=2))
    add("json", json.dumps({"名前": "太郎", "emoji": "😀", "escaped": "line\nbreak"}, ensure_ascii=False))
    add("json", json.dumps({"名前": "太郎", "emoji": "😀"}))
    add("json", '{"deeply":{"nested":{"object":{"with":{"many":{"levels":[1,[2,[3,[4]]]]}}}}}}')
    # Chinese, Japanese, Korean
    add("chinese", "你好，世界！今天天气很好。")
    add("chinese", "人工智能网关为团队共享大模型容量提供统一入口。")
    add("chinese", "中文标点：，。！？；：“”‘’（）《》【】")
    add("japanese", "こんにちは、世界。今日はいい天気ですね。")
    add("japanese", "カタカナとひらがなと漢字が混ざった文章です。")
    add("japanese", "ｈａｌｆ－ｗｉｄｔｈ　ｆｕｌｌ－ｗｉｄｔｈ　ｶﾀｶﾅ")
    add("korean", "안녕하세요, 세계! 오늘 날씨가 좋네요.")
    # Emoji
    add("emoji", "😀😃😄😁😆😅😂🤣")
    add("emoji", "Family: 👨‍👩‍👧‍👦, flags: 🇺🇸🇯🇵🇨🇳, skin tones: 👍🏽👍🏿")
    add("emoji", "❤️ ✨ 🔥 💯 ✅ ❌ ⚠️")
    add("emoji", "text😀text 😀 text😀")
    # Mixed scripts
    add("mixed", "English, 中文, 日本語, 한국어, Русский, العربية, עברית, ελληνικά, हिन्दी")
    add("mixed", "Привет мир! Как дела?")
    add("mixed", "مرحبا بالعالم، كيف حالك؟")
    add("mixed", "שלום עולם")
    add("mixed", "Ελληνικά γράμματα: αβγδε")
    add("mixed", "नमस्ते दुनिया")
    add("mixed", "Combining: e\u0301 a\u0308 n\u0303 — precomposed: é ä ñ")
    add("mixed", "Zero\u200bwidth\u200cjoiners\u200dhere\ufeffand BOM")
    add("mixed", "Ünïcödé Çàsè Tëst ß ẞ ǅ ǈ")
    add("mixed", "ＡＢＣ ａｂｃ １２３")
    add("mixed", "\u00a0non-breaking\u00a0spaces\u2003em\u2009thin")
    add("mixed", "math: ∑ᵢ xᵢ² ≤ ∞, ∀ε>0 ∃δ")
    # Numbers
    add("numbers", "1234567890")
    add("numbers", "3.14159265358979323846264338327950288419716939937510")
    add("numbers", "1,000,000 and 1.000.000 and 1 000 000")
    add("numbers", "-42 +17 0x1F 0b1010 1e10 6.022e23")
    add("numbers", "2024-11-26T06:42:03Z")
    add("numbers", "٠١٢٣٤٥٦٧٨٩ ०१२३ ①②③ ⅠⅡⅢ")
    add("numbers", "12345678901234567890123456789012345678901234567890")
    # Special-token strings counted as ordinary text
    add("special", "<|endoftext|>")
    add("special", "Before <|endoftext|> after")
    add("special", "<|fim_prefix|>def <|fim_suffix|> pass<|fim_middle|>")
    add("special", "<|endofprompt|><|im_start|>user\nhi<|im_end|>")
    add("special", "<|endoftext|><|endoftext|><|endoftext|>")
    # Whitespace shapes
    add("whitespace", "a  b   c    d     e")
    add("whitespace", "word \n \n word")
    add("whitespace", " \t \t \n\r\n  x")
    add("whitespace", "trailing\n\n\n\n")
    add("whitespace", "\r\n\r\n\r\n")
    add("whitespace", "  \u3000 \u00a0 x")
    # Trailing whitespace with line breaks inside (cl100k's `\s++$` before `\s*[\r\n]`).
    add("whitespace", "x  \n  ")
    add("whitespace", "end \r\n \t")
    add("whitespace", "a.\n\n  \n ")
    add("whitespace", " ", 64)
    add("whitespace", " ", 65, "x")
    add("whitespace", "\n", 200)
    add("whitespace", "\t", 300, "end")
    add("whitespace", " \n", 500)
    add("whitespace", " ", 1000)
    add("whitespace", " ", 10_000, "x")
    add("whitespace", " ", 100_000, "x")
    add("whitespace", " ", 100_001)
    add("whitespace", "\n", 50_000, "y")
    add("whitespace", " \t", 30_000, " z")
    # Close to the ~1M run where tiktoken's regex overflows (the service is
    # tested beyond it against an independent implementation).
    add("whitespace", " ", 900_000, "x")
    add("whitespace", "\n \t", 250_000, "y")
    # Long uniform and repeated runs
    add("repeat", "a", 1000)
    add("repeat", "a", 10_000)
    add("repeat", "a", 100_000, ".")
    add("repeat", "ab", 5000)
    add("repeat", "字", 3000)
    add("repeat", "😀", 2000)
    add("repeat", "9", 10_000)
    add("repeat", "!", 10_000)
    add("repeat", "The end. ", 500)
    add("repeat", "x", 65536, " y")
    # The 8 MiB single-letter run of the robustness tests (seconds per encoding here).
    add("repeat", "a", 8 * 1024 * 1024)
    return t


ALPHABET = (
    list("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")
    + list(" \t\n\r\u00a0\u3000")
    + list(".,;:!?'\"`~@#$%^&*()-_=+[]{}<>/\\|")
    + list("éüßçñøåÆŒ")
    + list("你好世界中文字符日本語かなカナ한국어")
    + list("ΑαΒβЖжЯяعربيעבר")
    + ["😀", "👍🏽", "🇯🇵", "👨‍👩‍👧", "e\u0301", "\u200d", "\ufeff"]
    + ["'s", "'t", "'re", "'ve", "'m", "'ll", "'d", "'S", "'LL"]
    + ["<|endoftext|>", "<|fim_prefix|>", "\r\n", "  ", "    ", "\n\n"]
)


def random_texts(seed: int, n: int):
    rnd = random.Random(seed)
    out = []
    for i in range(n):
        length = rnd.choice([1, 2, 3, 5, 8, 13, 21, 40, 80, 200])
        out.append(("random", "".join(rnd.choice(ALPHABET) for _ in range(length)), 1, ""))
    return out


def cookbook_message_tokens(enc, model, messages):
    """num_tokens_from_messages from the OpenAI cookbook ("How to count tokens
    with tiktoken"), extended only to list-of-text-parts content."""
    if model == "gpt-3.5-turbo-0301":
        per_message, per_name = 4, -1
    else:
        per_message, per_name = 3, 1
    n = 0
    for m in messages:
        n += per_message
        for key, value in m.items():
            if isinstance(value, list):
                n += sum(len(enc.encode_ordinary(p["text"])) for p in value)
            else:
                n += len(enc.encode_ordinary(value))
            if key == "name":
                n += per_name
    return n + 3


def cookbook_tools_tokens(enc, model, tools):
    """num_tokens_for_tools from the OpenAI cookbook (function-calling estimate)."""
    func_init = 7 if model.startswith(("gpt-4o", "gpt-4.1", "gpt-5", "o1", "o3", "o4")) else 10
    prop_init, prop_key, enum_init, enum_item, func_end = 3, 3, -3, 3, 12
    n = 0
    for t in tools:
        f = t["function"]
        n += func_init
        desc = f.get("description", "")
        if desc.endswith("."):
            desc = desc[:-1]
        n += len(enc.encode_ordinary(f["name"] + ":" + desc))
        props = f.get("parameters", {}).get("properties", {})
        if props:
            n += prop_init
            for key, p in props.items():
                n += prop_key
                if "enum" in p:
                    n += enum_init
                    for item in p["enum"]:
                        n += enum_item
                        n += len(enc.encode_ordinary(item))
                pdesc = p.get("description", "")
                if pdesc.endswith("."):
                    pdesc = pdesc[:-1]
                n += len(enc.encode_ordinary(f"{key}:{p['type']}:{pdesc}"))
    return n + func_end


def chat_vectors(tiktoken):
    conv = [
        {"role": "system", "content": "You are a helpful, pattern-following assistant that translates corporate jargon into plain English."},
        {"role": "system", "name": "example_user", "content": "New synergies will help drive top-line growth."},
        {"role": "system", "name": "example_assistant", "content": "Things working well together will increase revenue."},
        {"role": "user", "content": "This late pivot means we don't have time to boil the ocean for the client deliverable."},
    ]
    tools = [{"type": "function", "function": {
        "name": "get_current_weather",
        "description": "Get the current weather in a given location.",
        "parameters": {"type": "object", "properties": {
            "location": {"type": "string", "description": "The city and state, e.g. San Francisco, CA"},
            "unit": {"type": "string", "description": "The unit of temperature.", "enum": ["celsius", "fahrenheit"]},
        }, "required": ["location"]}}}]
    cases = [
        ("gpt-4o-mini", conv, None),
        ("gpt-4o", conv, None),
        ("gpt-4", conv, None),
        ("gpt-3.5-turbo-0301", conv, None),
        ("gpt-4o", [{"role": "user", "content": "你好！😀 <|endoftext|>"}], None),
        ("gpt-4o", [{"role": "user", "content": [{"type": "text", "text": "part one"}, {"type": "text", "text": " and two"}]}], None),
        ("gpt-4o-mini", [{"role": "user", "content": "What's the weather like in San Francisco?"}], tools),
        ("gpt-3.5-turbo", [{"role": "user", "content": "What's the weather like in San Francisco?"}], tools),
    ]
    out = []
    for model, messages, t in cases:
        enc = tiktoken.encoding_for_model(model)
        n = cookbook_message_tokens(enc, model, messages)
        req = {"model": model, "messages": messages}
        if t:
            n += cookbook_tools_tokens(enc, model, t)
            req["tools"] = t
        out.append({"request": req, "tokens": n, "approximate": bool(t)})
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="services/token-service/tests/fixtures/tiktoken_vectors.jsonl")
    args = ap.parse_args()
    cache = prepare_offline_cache()
    try:
        import tiktoken
    except ImportError:
        sys.exit("python tiktoken missing: .venv/bin/pip install -r tests/requirements.txt")
    encs = {name: tiktoken.get_encoding(name) for name in ENCODINGS}
    texts = fixed_texts() + random_texts(20251126, 60)
    n = 0
    with open(args.out, "w", encoding="utf-8") as f:
        for cat, text, repeat, suffix in texts:
            full = text * repeat + suffix
            for name in ENCODINGS:
                tokens = len(encs[name].encode_ordinary(full))
                row = {"encoding": name, "category": cat, "text": text, "repeat": repeat,
                       "suffix": suffix, "tokens": tokens}
                f.write(json.dumps(row, ensure_ascii=False) + "\n")
                n += 1
    chat_out = os.path.join(os.path.dirname(args.out), "chat_vectors.jsonl")
    with open(chat_out, "w", encoding="utf-8") as f:
        for row in chat_vectors(tiktoken):
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    shutil.rmtree(cache, ignore_errors=True)
    print(f"wrote {n} vectors ({len(texts)} texts x {len(ENCODINGS)} encodings) to {args.out}"
          f" with tiktoken {tiktoken.__version__}")


if __name__ == "__main__":
    main()
