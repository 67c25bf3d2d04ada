//! Deserializers that count the words of request text while parsing, so a
//! request body is never materialised as a JSON tree (the mock serves the
//! benchmarks and must stay cheap).
//!
//! The count is the mock's deterministic "prompt tokens": whitespace-separated
//! words of every text, and one per integer where a prompt is given as token ids.

use serde::de::{self, Deserialize, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use std::fmt;

pub fn count_words(s: &str) -> u64 {
    s.split_whitespace().count() as u64
}

/// Words in a message `content` or a prompt: a string, an array of content
/// parts (`{"type":"text","text":..}`, Gemini's `{"text":..}`, Anthropic's
/// `tool_result` block with its own `content`; other parts count nothing), an
/// array of strings, token ids (one word each), or null.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub struct Words(pub u64);

impl<'de> Deserialize<'de> for Words {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(WordsVisitor)
    }
}

struct WordsVisitor;

impl<'de> Visitor<'de> for WordsVisitor {
    type Value = Words;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a string, an array of strings, content parts or token ids, or null")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Words, E> {
        Ok(Words(count_words(v)))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Words, E> {
        Ok(Words(0))
    }
    fn visit_none<E: de::Error>(self) -> Result<Words, E> {
        Ok(Words(0))
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Words, E> {
        Ok(Words(1))
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Words, E> {
        Ok(Words(1))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Words, A::Error> {
        let mut n = 0;
        while let Some(Words(w)) = seq.next_element()? {
            n += w;
        }
        Ok(Words(n))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Words, A::Error> {
        // A content part: only its `text` (or a tool result's `content`)
        // counts; images, audio and tool-call arguments do not.
        let mut n = 0;
        while let Some(key) = map.next_key::<Key>()? {
            if matches!(key.0, KeyName::Text | KeyName::Content) {
                n += map.next_value::<Words>()?.0;
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(Words(n))
    }
}

/// The words of every message's `content` in a `messages` array (or every
/// Gemini content's `parts` in `contents`), summed without collecting them.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub struct MessageWords(pub u64);

impl<'de> Deserialize<'de> for MessageWords {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = MessageWords;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an array of messages")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<MessageWords, A::Error> {
                let mut n = 0;
                while let Some(m) = seq.next_element::<OneMessage>()? {
                    n += m.0;
                }
                Ok(MessageWords(n))
            }
        }
        d.deserialize_seq(V)
    }
}

/// One message (or Gemini content, or `systemInstruction`): the words of
/// its `content` or `parts`.
pub struct OneMessage(pub u64);

impl<'de> Deserialize<'de> for OneMessage {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = OneMessage;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a message object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<OneMessage, A::Error> {
                let mut n = 0;
                while let Some(key) = map.next_key::<Key>()? {
                    if matches!(key.0, KeyName::Content | KeyName::Parts) {
                        n += map.next_value::<Words>()?.0;
                    } else {
                        map.next_value::<IgnoredAny>()?;
                    }
                }
                Ok(OneMessage(n))
            }
        }
        d.deserialize_map(V)
    }
}

/// Embedding `input`: how many inputs and how many words in all.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub struct EmbeddingInput {
    pub items: u32,
    pub words: u64,
}

impl<'de> Deserialize<'de> for EmbeddingInput {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = EmbeddingInput;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string, an array of strings, token ids, or arrays of token ids")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<EmbeddingInput, E> {
                Ok(EmbeddingInput {
                    items: 1,
                    words: count_words(v),
                })
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<EmbeddingInput, A::Error> {
                // `[1,2,3]` is one input of three tokens; `["a","b"]` and
                // `[[1],[2]]` are two inputs.
                let (mut items, mut words, mut ids) = (0u32, 0u64, 0u64);
                while let Some(e) = seq.next_element::<Elem>()? {
                    match e {
                        Elem::Id => ids += 1,
                        Elem::Item(w) => {
                            items += 1;
                            words += w;
                        }
                    }
                }
                if ids > 0 {
                    items += 1;
                    words += ids;
                }
                Ok(EmbeddingInput { items, words })
            }
        }
        d.deserialize_any(V)
    }
}

enum Elem {
    Id,
    Item(u64),
}

impl<'de> Deserialize<'de> for Elem {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Elem;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string, a token id or an array of token ids")
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> Result<Elem, E> {
                Ok(Elem::Id)
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<Elem, E> {
                Ok(Elem::Id)
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Elem, E> {
                Ok(Elem::Item(count_words(v)))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Elem, A::Error> {
                Ok(Elem::Item(WordsVisitor.visit_seq(seq)?.0))
            }
        }
        d.deserialize_any(V)
    }
}

#[derive(PartialEq)]
enum KeyName {
    Text,
    Content,
    Parts,
    Other,
}

/// An object key recognised without allocating (escaped keys included).
struct Key(KeyName);

impl<'de> Deserialize<'de> for Key {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Key;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an object key")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Key, E> {
                Ok(Key(match v {
                    "text" => KeyName::Text,
                    "content" => KeyName::Content,
                    "parts" => KeyName::Parts,
                    _ => KeyName::Other,
                }))
            }
        }
        d.deserialize_str(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_strings_parts_and_token_ids() {
        let w: Words = serde_json::from_str(r#""one two  three\nfour""#).unwrap();
        assert_eq!(w, Words(4));
        let w: Words = serde_json::from_str(
            r#"[{"type":"text","text":"a b"},{"type":"image_url","image_url":{"url":"x y z"}}]"#,
        )
        .unwrap();
        assert_eq!(w, Words(2));
        let w: Words = serde_json::from_str("[1, 2, 3]").unwrap();
        assert_eq!(w, Words(3));
        let w: Words = serde_json::from_str("null").unwrap();
        assert_eq!(w, Words(0));
        assert!(serde_json::from_str::<Words>("true").is_err());
    }

    #[test]
    fn counts_message_contents_only() {
        let m: MessageWords = serde_json::from_str(
            r#"[{"role":"system","content":"be brief","name":"x y"},
                {"role":"user","content":[{"type":"text","text":"hello there world"}]},
                {"role":"assistant","content":null,"tool_calls":[{"id":"a b c"}]}]"#,
        )
        .unwrap();
        assert_eq!(m, MessageWords(5));
        assert!(serde_json::from_str::<MessageWords>(r#"{"content":"x"}"#).is_err());
    }

    #[test]
    fn counts_anthropic_blocks_and_gemini_parts() {
        // Anthropic: text blocks and tool results count; tool_use input does not.
        let m: MessageWords = serde_json::from_str(
            r#"[{"role":"user","content":[{"type":"text","text":"one two"}]},
                {"role":"assistant","content":[{"type":"tool_use","id":"t","name":"f","input":{"text":"no no"}}]},
                {"role":"user","content":[{"type":"tool_result","tool_use_id":"t","content":"three"},
                                          {"type":"tool_result","tool_use_id":"u","content":[{"type":"text","text":"four five"}]}]}]"#,
        )
        .unwrap();
        assert_eq!(m, MessageWords(5));
        // Gemini: text parts count; function calls and responses do not.
        let m: MessageWords = serde_json::from_str(
            r#"[{"role":"user","parts":[{"text":"a b c"},{"inlineData":{"data":"x y"}}]},
                {"role":"model","parts":[{"functionCall":{"name":"f","args":{"text":"no"}}}]},
                {"role":"user","parts":[{"functionResponse":{"name":"f","response":{"text":"no"}}}]}]"#,
        )
        .unwrap();
        assert_eq!(m, MessageWords(3));
        let s: OneMessage = serde_json::from_str(r#"{"parts":[{"text":"be brief"}]}"#).unwrap();
        assert_eq!(s.0, 2);
    }

    #[test]
    fn embedding_inputs_count_items_and_words() {
        let e: EmbeddingInput = serde_json::from_str(r#""a b c""#).unwrap();
        assert_eq!(e, EmbeddingInput { items: 1, words: 3 });
        let e: EmbeddingInput = serde_json::from_str(r#"["a b", "c"]"#).unwrap();
        assert_eq!(e, EmbeddingInput { items: 2, words: 3 });
        let e: EmbeddingInput = serde_json::from_str("[5, 6, 7, 8]").unwrap();
        assert_eq!(e, EmbeddingInput { items: 1, words: 4 });
        let e: EmbeddingInput = serde_json::from_str("[[1, 2], [3]]").unwrap();
        assert_eq!(e, EmbeddingInput { items: 2, words: 3 });
        assert!(serde_json::from_str::<EmbeddingInput>("{}").is_err());
    }
}
