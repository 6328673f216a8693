"""
Sample from a GPT-2: OpenAI's weights, a local HuggingFace directory, or a checkpoint written by train_gpt2.py.

    python sample.py --init_from gpt2 --prompt "Hello, I'm a language model," --num_samples 5 --max_new_tokens 30
    python sample.py --init_from log/model_19073.pt --temperature 0.8 --top_k 200

Generation keeps a KV cache (the keys and values of every token already seen), so each new token costs the work of
one position instead of the whole sequence: the same tokens as without it, faster (BENCHMARKS.md). --no-cache turns
it off, for comparison. The time and tokens/s go to stderr, so stdout holds only the samples.
"""
import argparse
import sys
import time

from plumbing.cli import command_line, device_name, named_by, real_number, whole_number
from plumbing.hardware import pick_device, synchronize
from train_gpt2 import GPT, sample


@command_line
def main(argv=None):
    parser = argparse.ArgumentParser(description="Sample from a GPT-2 model.")
    parser.add_argument("--init_from", default="gpt2",
                        help="gpt2, gpt2-medium, gpt2-large, gpt2-xl, a directory written by "
                             "GPT2LMHeadModel.save_pretrained, or a model_STEP.pt checkpoint of train_gpt2.py")
    parser.add_argument("--prompt", default="Hello, I'm a language model,",
                        help="text to continue (empty: start a new document)")
    parser.add_argument("--num_samples", type=whole_number(1), default=5, help="how many continuations")
    parser.add_argument("--max_new_tokens", type=whole_number(0), default=30, help="tokens to add to each")
    parser.add_argument("--top_k", type=whole_number(1), default=50,
                        help="draw from the k most likely tokens only; 1 is greedy")
    parser.add_argument("--temperature", type=real_number(0, hint=" (for greedy decoding use --top_k 1)"), default=1.0,
                        help="divides the logits: below 1 sharper and safer, above 1 more varied")
    parser.add_argument("--seed", type=whole_number(0, 2**64 - 1), default=42,
                        help="random seed: the same seed gives the same samples")
    parser.add_argument("--device", default="auto", type=device_name,
                        help="auto (cuda, then mps, then cpu), cpu, cuda, cuda:N or mps")
    parser.add_argument("--cache", action=argparse.BooleanOptionalAction, default=True,
                        help="use the KV cache (--no-cache: recompute the whole sequence for every token)")
    args = parser.parse_args(argv)

    device, device_type = pick_device(args.device)
    with named_by("--init_from"):
        model = GPT.load(args.init_from).to(device).eval()
    t0 = time.perf_counter()
    texts = sample(model, args.prompt, args.num_samples, args.max_new_tokens, device, args.seed,
                   top_k=args.top_k, temperature=args.temperature, use_cache=args.cache)
    synchronize(device_type)
    dt = time.perf_counter() - t0
    for i, text in enumerate(texts):
        print(f"--- sample {i}\n{text}")
    n = args.num_samples * args.max_new_tokens
    print(f"{n} tokens in {dt:.2f} s: {n / dt:.1f} tokens/s ({'with' if args.cache else 'without'} KV cache)",
          file=sys.stderr)


if __name__ == "__main__":
    main()
