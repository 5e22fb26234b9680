/* chat.c: the built-in chat templates of chat.h, their recognition from Jinja text and their
 * renderers. The known Jinja texts are kept here verbatim (newlines as characters); the
 * renderers are written out by hand from them and checked against transformers' output by
 * tests/test_chat.c. Not a Jinja interpreter, and nothing here tokenizes. */
#include "loraft/chat.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "loraft/bpe.h"
#include "loraft/utf8.h"

#define SMOLLM2_SYSTEM "You are a helpful AI assistant named SmolLM, trained by Hugging Face"
#define QWEN2_SYSTEM "You are a helpful assistant."
#define QWEN25_SYSTEM "You are Qwen, created by Alibaba Cloud. You are a helpful assistant."

/* SmolLM3's default instructions (SmolLM2's sentence, closed), without reasoning and with it */
#define SMOLLM3_SYSTEM SMOLLM2_SYSTEM "."
#define SMOLLM3_THINK_SYSTEM                                                                       \
    SMOLLM3_SYSTEM                                                                                 \
    " Your role as an assistant involves thoroughly exploring questions through a systematic "     \
    "thinking process before providing the final precise and accurate solutions. This "            \
    "requires engaging in a comprehensive cycle of analysis, summarizing, exploration, "           \
    "reassessment, reflection, backtracking, and iteration to develop well-considered "            \
    "thinking process. Please structure your response into two main sections: Thought and "        \
    "Solution using the specified format: <think> Thought section </think> Solution section. "     \
    "In the Thought section, detail your reasoning process in steps. Each step should "            \
    "include detailed considerations such as analysing questions, summarizing relevant "           \
    "findings, brainstorming new ideas, verifying the accuracy of the current steps, "             \
    "refining any errors, and revisiting previous steps. In the Solution section, based on "       \
    "various attempts, explorations, and reflections from the Thought section, "                   \
    "systematically present the final solution that you deem correct. The Solution section "       \
    "should be logical, accurate, and concise and detail necessary steps needed to reach the "     \
    "conclusion."
/* The date loraft's smollm3 writes into the system turn by default, SmolLM3's release day:
 * the template dates it today (strftime_now), which would make SFT data change from day to day */
#define SMOLLM3_DATE "08 July 2025"

/* ChatML with a default system turn, as Qwen1.5 and Qwen2 wrote it and SmolLM2 kept it */
#define CHATML_WITH_SYSTEM(system)                                                                 \
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ "      \
    "'<|im_start|>system\n" system "<|im_end|>\n' }}{% endif %}{{'<|im_start|>' + "                \
    "message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if "        \
    "add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"

/* Qwen2.5-Instruct's template (tokenizer_config.json's chat_template, Jinja's own escapes kept):
 * with tools declared or assistant tool calls it renders more, which loraft does not; without,
 * ChatML with a default system turn. */
static const char QWEN25_JINJA[] =
    "{%- if tools %}\n"
    "    {{- '<|im_start|>system\\n' }}\n"
    "    {%- if messages[0]['role'] == 'system' %}\n"
    "        {{- messages[0]['content'] }}\n"
    "    {%- else %}\n"
    "        {{- '" QWEN25_SYSTEM "' }}\n"
    "    {%- endif %}\n"
    "    {{- \"\\n\\n# Tools\\n\\nYou may call one or more functions to assist with the user "
    "query.\\n\\nYou are provided with function signatures within <tools></tools> XML "
    "tags:\\n<tools>\" }}\n"
    "    {%- for tool in tools %}\n"
    "        {{- \"\\n\" }}\n"
    "        {{- tool | tojson }}\n"
    "    {%- endfor %}\n"
    "    {{- \"\\n</tools>\\n\\nFor each function call, return a json object with function name "
    "and arguments within <tool_call></tool_call> XML tags:\\n<tool_call>\\n{\\\"name\\\": "
    "<function-name>, \\\"arguments\\\": <args-json-object>}\\n</tool_call><|im_end|>\\n\" }}\n"
    "{%- else %}\n"
    "    {%- if messages[0]['role'] == 'system' %}\n"
    "        {{- '<|im_start|>system\\n' + messages[0]['content'] + '<|im_end|>\\n' }}\n"
    "    {%- else %}\n"
    "        {{- '<|im_start|>system\\n" QWEN25_SYSTEM "<|im_end|>\\n' }}\n"
    "    {%- endif %}\n"
    "{%- endif %}\n"
    "{%- for message in messages %}\n"
    "    {%- if (message.role == \"user\") or (message.role == \"system\" and not loop.first) or "
    "(message.role == \"assistant\" and not message.tool_calls) %}\n"
    "        {{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>' + '\\n' "
    "}}\n"
    "    {%- elif message.role == \"assistant\" %}\n"
    "        {{- '<|im_start|>' + message.role }}\n"
    "        {%- if message.content %}\n"
    "            {{- '\\n' + message.content }}\n"
    "        {%- endif %}\n"
    "        {%- for tool_call in message.tool_calls %}\n"
    "            {%- if tool_call.function is defined %}\n"
    "                {%- set tool_call = tool_call.function %}\n"
    "            {%- endif %}\n"
    "            {{- '\\n<tool_call>\\n{\"name\": \"' }}\n"
    "            {{- tool_call.name }}\n"
    "            {{- '\", \"arguments\": ' }}\n"
    "            {{- tool_call.arguments | tojson }}\n"
    "            {{- '}\\n</tool_call>' }}\n"
    "        {%- endfor %}\n"
    "        {{- '<|im_end|>\\n' }}\n"
    "    {%- elif message.role == \"tool\" %}\n"
    "        {%- if (loop.index0 == 0) or (messages[loop.index0 - 1].role != \"tool\") %}\n"
    "            {{- '<|im_start|>user' }}\n"
    "        {%- endif %}\n"
    "        {{- '\\n<tool_response>\\n' }}\n"
    "        {{- message.content }}\n"
    "        {{- '\\n</tool_response>' }}\n"
    "        {%- if loop.last or (messages[loop.index0 + 1].role != \"tool\") %}\n"
    "            {{- '<|im_end|>\\n' }}\n"
    "        {%- endif %}\n"
    "    {%- endif %}\n"
    "{%- endfor %}\n"
    "{%- if add_generation_prompt %}\n"
    "    {{- '<|im_start|>assistant\\n' }}\n"
    "{%- endif %}\n";

/* Llama 3.1 / 3.3 Instruct's template (the two are the same text) and Llama 3.2 Instruct's,
 * which dates the system turn today (transformers' strftime_now) where 3.1 writes 26 Jul 2024;
 * Qwen3's (0.6B to 32B, thinking and not). With tools or tool calls they render more, which
 * loraft does not. */
static const char LLAMA31_JINJA[] =
    "{{- bos_token }}\n"
    "{%- if custom_tools is defined %}\n"
    "    {%- set tools = custom_tools %}\n"
    "{%- endif %}\n"
    "{%- if not tools_in_user_message is defined %}\n"
    "    {%- set tools_in_user_message = true %}\n"
    "{%- endif %}\n"
    "{%- if not date_string is defined %}\n"
    "    {%- set date_string = \"26 Jul 2024\" %}\n"
    "{%- endif %}\n"
    "{%- if not tools is defined %}\n"
    "    {%- set tools = none %}\n"
    "{%- endif %}\n"
    "\n"
    "{#- This block extracts the system message, so we can slot it into the right place. #}\n"
    "{%- if messages[0]['role'] == 'system' %}\n"
    "    {%- set system_message = messages[0]['content']|trim %}\n"
    "    {%- set messages = messages[1:] %}\n"
    "{%- else %}\n"
    "    {%- set system_message = \"\" %}\n"
    "{%- endif %}\n"
    "\n"
    "{#- System message + builtin tools #}\n"
    "{{- \"<|start_header_id|>system<|end_header_id|>\\n\\n\" }}\n"
    "{%- if builtin_tools is defined or tools is not none %}\n"
    "    {{- \"Environment: ipython\\n\" }}\n"
    "{%- endif %}\n"
    "{%- if builtin_tools is defined %}\n"
    "    {{- \"Tools: \" + builtin_tools | reject('equalto', 'code_interpreter') | join(\", \") +"
    " \"\\n\\n\"}}\n"
    "{%- endif %}\n"
    "{{- \"Cutting Knowledge Date: December 2023\\n\" }}\n"
    "{{- \"Today Date: \" + date_string + \"\\n\\n\" }}\n"
    "{%- if tools is not none and not tools_in_user_message %}\n"
    "    {{- \"You have access to the following functions. To call a function, please respond wit"
    "h JSON for a function call.\" }}\n"
    "    {{- 'Respond in the format {\"name\": function name, \"parameters\": dictionary of argum"
    "ent name and its value}.' }}\n"
    "    {{- \"Do not use variables.\\n\\n\" }}\n"
    "    {%- for t in tools %}\n"
    "        {{- t | tojson(indent=4) }}\n"
    "        {{- \"\\n\\n\" }}\n"
    "    {%- endfor %}\n"
    "{%- endif %}\n"
    "{{- system_message }}\n"
    "{{- \"<|eot_id|>\" }}\n"
    "\n"
    "{#- Custom tools are passed in a user message with some extra guidance #}\n"
    "{%- if tools_in_user_message and not tools is none %}\n"
    "    {#- Extract the first user message so we can plug it in here #}\n"
    "    {%- if messages | length != 0 %}\n"
    "        {%- set first_user_message = messages[0]['content']|trim %}\n"
    "        {%- set messages = messages[1:] %}\n"
    "    {%- else %}\n"
    "        {{- raise_exception(\"Cannot put tools in the first user message when there's no fir"
    "st user message!\") }}\n"
    "{%- endif %}\n"
    "    {{- '<|start_header_id|>user<|end_header_id|>\\n\\n' -}}\n"
    "    {{- \"Given the following functions, please respond with a JSON for a function call \" }"
    "}\n"
    "    {{- \"with its proper arguments that best answers the given prompt.\\n\\n\" }}\n"
    "    {{- 'Respond in the format {\"name\": function name, \"parameters\": dictionary of argum"
    "ent name and its value}.' }}\n"
    "    {{- \"Do not use variables.\\n\\n\" }}\n"
    "    {%- for t in tools %}\n"
    "        {{- t | tojson(indent=4) }}\n"
    "        {{- \"\\n\\n\" }}\n"
    "    {%- endfor %}\n"
    "    {{- first_user_message + \"<|eot_id|>\"}}\n"
    "{%- endif %}\n"
    "\n"
    "{%- for message in messages %}\n"
    "    {%- if not (message.role == 'ipython' or message.role == 'tool' or 'tool_calls' in messa"
    "ge) %}\n"
    "        {{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n'+ message['co"
    "ntent'] | trim + '<|eot_id|>' }}\n"
    "    {%- elif 'tool_calls' in message %}\n"
    "        {%- if not message.tool_calls|length == 1 %}\n"
    "            {{- raise_exception(\"This model only supports single tool-calls at once!\") }}"
    "\n"
    "        {%- endif %}\n"
    "        {%- set tool_call = message.tool_calls[0].function %}\n"
    "        {%- if builtin_tools is defined and tool_call.name in builtin_tools %}\n"
    "            {{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' -}}\n"
    "            {{- \"<|python_tag|>\" + tool_call.name + \".call(\" }}\n"
    "            {%- for arg_name, arg_val in tool_call.arguments | items %}\n"
    "                {{- arg_name + '=\"' + arg_val + '\"' }}\n"
    "                {%- if not loop.last %}\n"
    "                    {{- \", \" }}\n"
    "                {%- endif %}\n"
    "                {%- endfor %}\n"
    "            {{- \")\" }}\n"
    "        {%- else  %}\n"
    "            {{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' -}}\n"
    "            {{- '{\"name\": \"' + tool_call.name + '\", ' }}\n"
    "            {{- '\"parameters\": ' }}\n"
    "            {{- tool_call.arguments | tojson }}\n"
    "            {{- \"}\" }}\n"
    "        {%- endif %}\n"
    "        {%- if builtin_tools is defined %}\n"
    "            {#- This means we're in ipython mode #}\n"
    "            {{- \"<|eom_id|>\" }}\n"
    "        {%- else %}\n"
    "            {{- \"<|eot_id|>\" }}\n"
    "        {%- endif %}\n"
    "    {%- elif message.role == \"tool\" or message.role == \"ipython\" %}\n"
    "        {{- \"<|start_header_id|>ipython<|end_header_id|>\\n\\n\" }}\n"
    "        {%- if message.content is mapping or message.content is iterable %}\n"
    "            {{- message.content | tojson }}\n"
    "        {%- else %}\n"
    "            {{- message.content }}\n"
    "        {%- endif %}\n"
    "        {{- \"<|eot_id|>\" }}\n"
    "    {%- endif %}\n"
    "{%- endfor %}\n"
    "{%- if add_generation_prompt %}\n"
    "    {{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}\n"
    "{%- endif %}\n";

static const char LLAMA32_JINJA[] =
    "{{- bos_token }}\n"
    "{%- if custom_tools is defined %}\n"
    "    {%- set tools = custom_tools %}\n"
    "{%- endif %}\n"
    "{%- if not tools_in_user_message is defined %}\n"
    "    {%- set tools_in_user_message = true %}\n"
    "{%- endif %}\n"
    "{%- if not date_string is defined %}\n"
    "    {%- if strftime_now is defined %}\n"
    "        {%- set date_string = strftime_now(\"%d %b %Y\") %}\n"
    "    {%- else %}\n"
    "        {%- set date_string = \"26 Jul 2024\" %}\n"
    "    {%- endif %}\n"
    "{%- endif %}\n"
    "{%- if not tools is defined %}\n"
    "    {%- set tools = none %}\n"
    "{%- endif %}\n"
    "\n"
    "{#- This block extracts the system message, so we can slot it into the right place. #}\n"
    "{%- if messages[0]['role'] == 'system' %}\n"
    "    {%- set system_message = messages[0]['content']|trim %}\n"
    "    {%- set messages = messages[1:] %}\n"
    "{%- else %}\n"
    "    {%- set system_message = \"\" %}\n"
    "{%- endif %}\n"
    "\n"
    "{#- System message #}\n"
    "{{- \"<|start_header_id|>system<|end_header_id|>\\n\\n\" }}\n"
    "{%- if tools is not none %}\n"
    "    {{- \"Environment: ipython\\n\" }}\n"
    "{%- endif %}\n"
    "{{- \"Cutting Knowledge Date: December 2023\\n\" }}\n"
    "{{- \"Today Date: \" + date_string + \"\\n\\n\" }}\n"
    "{%- if tools is not none and not tools_in_user_message %}\n"
    "    {{- \"You have access to the following functions. To call a function, please respond wit"
    "h JSON for a function call.\" }}\n"
    "    {{- 'Respond in the format {\"name\": function name, \"parameters\": dictionary of argum"
    "ent name and its value}.' }}\n"
    "    {{- \"Do not use variables.\\n\\n\" }}\n"
    "    {%- for t in tools %}\n"
    "        {{- t | tojson(indent=4) }}\n"
    "        {{- \"\\n\\n\" }}\n"
    "    {%- endfor %}\n"
    "{%- endif %}\n"
    "{{- system_message }}\n"
    "{{- \"<|eot_id|>\" }}\n"
    "\n"
    "{#- Custom tools are passed in a user message with some extra guidance #}\n"
    "{%- if tools_in_user_message and not tools is none %}\n"
    "    {#- Extract the first user message so we can plug it in here #}\n"
    "    {%- if messages | length != 0 %}\n"
    "        {%- set first_user_message = messages[0]['content']|trim %}\n"
    "        {%- set messages = messages[1:] %}\n"
    "    {%- else %}\n"
    "        {{- raise_exception(\"Cannot put tools in the first user message when there's no fir"
    "st user message!\") }}\n"
    "{%- endif %}\n"
    "    {{- '<|start_header_id|>user<|end_header_id|>\\n\\n' -}}\n"
    "    {{- \"Given the following functions, please respond with a JSON for a function call \" }"
    "}\n"
    "    {{- \"with its proper arguments that best answers the given prompt.\\n\\n\" }}\n"
    "    {{- 'Respond in the format {\"name\": function name, \"parameters\": dictionary of argum"
    "ent name and its value}.' }}\n"
    "    {{- \"Do not use variables.\\n\\n\" }}\n"
    "    {%- for t in tools %}\n"
    "        {{- t | tojson(indent=4) }}\n"
    "        {{- \"\\n\\n\" }}\n"
    "    {%- endfor %}\n"
    "    {{- first_user_message + \"<|eot_id|>\"}}\n"
    "{%- endif %}\n"
    "\n"
    "{%- for message in messages %}\n"
    "    {%- if not (message.role == 'ipython' or message.role == 'tool' or 'tool_calls' in messa"
    "ge) %}\n"
    "        {{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n'+ message['co"
    "ntent'] | trim + '<|eot_id|>' }}\n"
    "    {%- elif 'tool_calls' in message %}\n"
    "        {%- if not message.tool_calls|length == 1 %}\n"
    "            {{- raise_exception(\"This model only supports single tool-calls at once!\") }}"
    "\n"
    "        {%- endif %}\n"
    "        {%- set tool_call = message.tool_calls[0].function %}\n"
    "        {{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' -}}\n"
    "        {{- '{\"name\": \"' + tool_call.name + '\", ' }}\n"
    "        {{- '\"parameters\": ' }}\n"
    "        {{- tool_call.arguments | tojson }}\n"
    "        {{- \"}\" }}\n"
    "        {{- \"<|eot_id|>\" }}\n"
    "    {%- elif message.role == \"tool\" or message.role == \"ipython\" %}\n"
    "        {{- \"<|start_header_id|>ipython<|end_header_id|>\\n\\n\" }}\n"
    "        {%- if message.content is mapping or message.content is iterable %}\n"
    "            {{- message.content | tojson }}\n"
    "        {%- else %}\n"
    "            {{- message.content }}\n"
    "        {%- endif %}\n"
    "        {{- \"<|eot_id|>\" }}\n"
    "    {%- endif %}\n"
    "{%- endfor %}\n"
    "{%- if add_generation_prompt %}\n"
    "    {{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}\n"
    "{%- endif %}\n";

static const char QWEN3_JINJA[] =
    "{%- if tools %}\n"
    "    {{- '<|im_start|>system\\n' }}\n"
    "    {%- if messages[0].role == 'system' %}\n"
    "        {{- messages[0].content + '\\n\\n' }}\n"
    "    {%- endif %}\n"
    "    {{- \"# Tools\\n\\nYou may call one or more functions to assist with the user query.\\n"
    "\\nYou are provided with function signatures within <tools></tools> XML tags:\\n<tools>\" }}"
    "\n"
    "    {%- for tool in tools %}\n"
    "        {{- \"\\n\" }}\n"
    "        {{- tool | tojson }}\n"
    "    {%- endfor %}\n"
    "    {{- \"\\n</tools>\\n\\nFor each function call, return a json object with function name a"
    "nd arguments within <tool_call></tool_call> XML tags:\\n<tool_call>\\n{\\\"name\\\": <functi"
    "on-name>, \\\"arguments\\\": <args-json-object>}\\n</tool_call><|im_end|>\\n\" }}\n"
    "{%- else %}\n"
    "    {%- if messages[0].role == 'system' %}\n"
    "        {{- '<|im_start|>system\\n' + messages[0].content + '<|im_end|>\\n' }}\n"
    "    {%- endif %}\n"
    "{%- endif %}\n"
    "{%- set ns = namespace(multi_step_tool=true, last_query_index=messages|length - 1) %}\n"
    "{%- for message in messages[::-1] %}\n"
    "    {%- set index = (messages|length - 1) - loop.index0 %}\n"
    "    {%- if ns.multi_step_tool and message.role == \"user\" and not(message.content.startswit"
    "h('<tool_response>') and message.content.endswith('</tool_response>')) %}\n"
    "        {%- set ns.multi_step_tool = false %}\n"
    "        {%- set ns.last_query_index = index %}\n"
    "    {%- endif %}\n"
    "{%- endfor %}\n"
    "{%- for message in messages %}\n"
    "    {%- if (message.role == \"user\") or (message.role == \"system\" and not loop.first) %}"
    "\n"
    "        {{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>' + '\\n' }"
    "}\n"
    "    {%- elif message.role == \"assistant\" %}\n"
    "        {%- set content = message.content %}\n"
    "        {%- set reasoning_content = '' %}\n"
    "        {%- if message.reasoning_content is defined and message.reasoning_content is not non"
    "e %}\n"
    "            {%- set reasoning_content = message.reasoning_content %}\n"
    "        {%- else %}\n"
    "            {%- if '</think>' in message.content %}\n"
    "                {%- set content = message.content.split('</think>')[-1].lstrip('\\n') %}\n"
    "                {%- set reasoning_content = message.content.split('</think>')[0].rstrip('\\n"
    "').split('<think>')[-1].lstrip('\\n') %}\n"
    "            {%- endif %}\n"
    "        {%- endif %}\n"
    "        {%- if loop.index0 > ns.last_query_index %}\n"
    "            {%- if loop.last or (not loop.last and reasoning_content) %}\n"
    "                {{- '<|im_start|>' + message.role + '\\n<think>\\n' + reasoning_content.stri"
    "p('\\n') + '\\n</think>\\n\\n' + content.lstrip('\\n') }}\n"
    "            {%- else %}\n"
    "                {{- '<|im_start|>' + message.role + '\\n' + content }}\n"
    "            {%- endif %}\n"
    "        {%- else %}\n"
    "            {{- '<|im_start|>' + message.role + '\\n' + content }}\n"
    "        {%- endif %}\n"
    "        {%- if message.tool_calls %}\n"
    "            {%- for tool_call in message.tool_calls %}\n"
    "                {%- if (loop.first and content) or (not loop.first) %}\n"
    "                    {{- '\\n' }}\n"
    "                {%- endif %}\n"
    "                {%- if tool_call.function %}\n"
    "                    {%- set tool_call = tool_call.function %}\n"
    "                {%- endif %}\n"
    "                {{- '<tool_call>\\n{\"name\": \"' }}\n"
    "                {{- tool_call.name }}\n"
    "                {{- '\", \"arguments\": ' }}\n"
    "                {%- if tool_call.arguments is string %}\n"
    "                    {{- tool_call.arguments }}\n"
    "                {%- else %}\n"
    "                    {{- tool_call.arguments | tojson }}\n"
    "                {%- endif %}\n"
    "                {{- '}\\n</tool_call>' }}\n"
    "            {%- endfor %}\n"
    "        {%- endif %}\n"
    "        {{- '<|im_end|>\\n' }}\n"
    "    {%- elif message.role == \"tool\" %}\n"
    "        {%- if loop.first or (messages[loop.index0 - 1].role != \"tool\") %}\n"
    "            {{- '<|im_start|>user' }}\n"
    "        {%- endif %}\n"
    "        {{- '\\n<tool_response>\\n' }}\n"
    "        {{- message.content }}\n"
    "        {{- '\\n</tool_response>' }}\n"
    "        {%- if loop.last or (messages[loop.index0 + 1].role != \"tool\") %}\n"
    "            {{- '<|im_end|>\\n' }}\n"
    "        {%- endif %}\n"
    "    {%- endif %}\n"
    "{%- endfor %}\n"
    "{%- if add_generation_prompt %}\n"
    "    {{- '<|im_start|>assistant\\n' }}\n"
    "    {%- if enable_thinking is defined and enable_thinking is false %}\n"
    "        {{- '<think>\\n\\n</think>\\n\\n' }}\n"
    "    {%- endif %}\n"
    "{%- endif %}";

/* SmolLM3-3B's template (chat_template.jinja as the model shipped it; Jinja's own escapes kept).
 * Without xml_tools or python_tools, which loraft does not render, it leaves the metadata system
 * turn open: no <|im_end|> before the first user turn. */
static const char SMOLLM3_JINJA[] =
    "{# ───── defaults ───── #}\n"
    "{%- if enable_thinking is not defined -%}\n"
    "{%- set enable_thinking = true -%}\n"
    "{%- endif -%}\n"
    "\n"
    "{# ───── reasoning mode ───── #}\n"
    "{%- if enable_thinking -%}\n"
    "  {%- set reasoning_mode = \"/think\" -%}\n"
    "{%- else -%}\n"
    "  {%- set reasoning_mode = \"/no_think\" -%}\n"
    "{%- endif -%}\n"
    "\n"
    "{# ───── header (system message) ───── #}\n"
    "{{- \"<|im_start|>system\\n\" -}}\n"
    "\n"
    "{%- if messages[0].role == \"system\" -%}\n"
    "  {%- set system_message = messages[0].content -%}\n"
    "  {%- if \"/no_think\" in system_message -%}\n"
    "    {%- set reasoning_mode = \"/no_think\" -%}\n"
    "  {%- elif \"/think\" in system_message -%}\n"
    "    {%- set reasoning_mode = \"/think\" -%}\n"
    "  {%- endif -%}\n"
    "  {%- set custom_instructions = system_message.replace(\"/no_think\", \"\").replace(\"/think\""
    ", \"\").rstrip() -%}\n"
    "{%- endif -%}\n"
    "\n"
    "{%- if \"/system_override\" in system_message -%}\n"
    "  {{- custom_instructions.replace(\"/system_override\", \"\").rstrip() -}}\n"
    "  {{- \"<|im_end|>\\n\" -}}\n"
    "{%- else -%}\n"
    "  {{- \"## Metadata\\n\\n\" -}}\n"
    "  {{- \"Knowledge Cutoff Date: June 2025\\n\" -}}\n"
    "  {%- set today = strftime_now(\"%d %B %Y\") -%}\n"
    "  {{- \"Today Date: \" ~ today ~ \"\\n\" -}}\n"
    "  {{- \"Reasoning Mode: \" + reasoning_mode + \"\\n\\n\" -}}\n"
    "  \n"
    "  {{- \"## Custom Instructions\\n\\n\" -}}\n"
    "  {%- if custom_instructions -%}\n"
    "    {{- custom_instructions + \"\\n\\n\" -}}\n"
    "  {%- elif reasoning_mode == \"/think\" -%}\n"
    "    {{- \"" SMOLLM3_THINK_SYSTEM "\\n\\n\" -}}\n"
    "  {%- else -%}\n"
    "    {{- \"" SMOLLM3_SYSTEM "\\n\\n\" -}}\n"
    "  {%- endif -%}\n"
    "\n"
    "  {%- if xml_tools or python_tools -%}\n"
    "    {{- \"### Tools\\n\\n\" -}}\n"
    "    {%- if xml_tools -%}\n"
    "      {%- set ns = namespace(xml_tool_string=\"You may call one or more functions to assist wi"
    "th the user query.\\nYou are provided with function signatures within <tools></tools> XML tags"
    ":\\n\\n<tools>\\n\") -%}\n"
    "      {%- for tool in xml_tools[:] -%} {# The slicing makes sure that xml_tools is a list #}\n"
    "        {%- set ns.xml_tool_string = ns.xml_tool_string ~ (tool | string) ~ \"\\n\" -%}\n"
    "      {%- endfor -%}\n"
    "      {%- set xml_tool_string = ns.xml_tool_string + \"</tools>\\n\\nFor each function call, r"
    "eturn a json object with function name and arguments within <tool_call></tool_call> XML tags:"
    "\\n<tool_call>\\n{\\\"name\\\": <function-name>, \\\"arguments\\\": <args-json-object>}\\n</to"
    "ol_call>\" -%}\n"
    "      {{- xml_tool_string -}}\n"
    "    {%- endif -%}\n"
    "    {%- if python_tools -%}\n"
    "      {%- set ns = namespace(python_tool_string=\"When you send a message containing Python co"
    "de between '<code>' and '</code>' tags, it will be executed in a stateful Jupyter notebook env"
    "ironment, and you will then be given the output to continued reasoning in an agentic loop.\\n"
    "\\nYou can use the following tools in your python code like regular functions:\\n<tools>\\n\")"
    " -%}\n"
    "      {%- for tool in python_tools[:] -%} {# The slicing makes sure that python_tools is a lis"
    "t #}\n"
    "        {%- set ns.python_tool_string = ns.python_tool_string ~ (tool | string) ~ \"\\n\" -%}"
    "\n"
    "      {%- endfor -%}\n"
    "      {%- set python_tool_string = ns.python_tool_string + \"</tools>\\n\\nThe state persists "
    "between code executions: so variables that you define in one step are still available thereaft"
    "er.\" -%}\n"
    "      {{- python_tool_string -}}\n"
    "    {%- endif -%}\n"
    "    {{- \"\\n\\n\" -}}\n"
    "    {{- \"<|im_end|>\\n\" -}}\n"
    "  {%- endif -%}\n"
    "{%- endif -%}\n"
    "{# ───── main loop ───── #}\n"
    "{%- for message in messages -%}\n"
    "    {%- set content = message.content if message.content is string else \"\" -%}\n"
    "    {%- if message.role == \"user\" -%}\n"
    "        {{ \"<|im_start|>\" + message.role + \"\\n\"  + content + \"<|im_end|>\\n\" }}\n"
    "    {%- elif message.role == \"assistant\" -%}\n"
    "        {%- if reasoning_mode == \"/think\" -%}\n"
    "            {{ \"<|im_start|>assistant\\n\" + content.lstrip(\"\\n\") + \"<|im_end|>\\n\" }}\n"
    "        {%- else -%}\n"
    "            {{ \"<|im_start|>assistant\\n\" + \"<think>\\n\\n</think>\\n\" + content.lstrip(\""
    "\\n\") + \"<|im_end|>\\n\" }}\n"
    "        {%- endif -%}\n"
    "    {%- elif message.role == \"tool\" -%}\n"
    "    {{ \"<|im_start|>\" + \"user\\n\"  + content + \"<|im_end|>\\n\" }}\n"
    "    {%- endif -%}\n"
    "{%- endfor -%}\n"
    "{# ───── generation prompt ───── #}\n"
    "{%- if add_generation_prompt -%}\n"
    "    {%- if reasoning_mode == \"/think\" -%}\n"
    "        {{ \"<|im_start|>assistant\\n\" }}\n"
    "    {%- else -%}\n"
    "        {{ \"<|im_start|>assistant\\n\" + \"<think>\\n\\n</think>\\n\"  }}\n"
    "    {%- endif -%}\n"
    "{%- endif -%}";

/* The errors the [INST] templates raise (raise_exception), in their words */
#define ALTERNATE "Conversation roles must alternate user/assistant/user/assistant/..."
#define ALTERNATE_AFTER_SYSTEM                                                                     \
    "After the optional system message, conversation roles must alternate "                        \
    "user/assistant/user/assistant/..."
#define ONLY_USER_ASSISTANT "Only user and assistant roles are supported!"
#define SYSTEM_NOT_SUPPORTED "System role not supported" /* Gemma 1's and 2's */
#define ONLY_USER_ASSISTANT_SYSTEM                                                                 \
    "Only user and assistant roles are supported, with the exception of an initial optional "      \
    "system message!"
/* loraft's refusal where Mistral's v3 templates (v0.3's, Nemo's) would drop the system message */
#define V3_REFUSAL "renders the system message only in a conversation that ends with a user turn"

/* Llama-2-7b-chat-hf's template (13b and 70b carry the same; Jinja's own escapes kept) */
static const char LLAMA2_JINJA[] =
    "{% if messages[0]['role'] == 'system' %}{% set loop_messages = messages[1:] %}{% set system_me"
    "ssage = messages[0]['content'] %}{% else %}{% set loop_messages = messages %}{% set system_mes"
    "sage = false %}{% endif %}{% for message in loop_messages %}{% if (message['role'] == 'user') "
    "!= (loop.index0 % 2 == 0) %}{{ raise_exception('Conversation roles must alternate user/assista"
    "nt/user/assistant/...') }}{% endif %}{% if loop.index0 == 0 and system_message != false %}{% s"
    "et content = '<<SYS>>\\n' + system_message + '\\n<</SYS>>\\n\\n' + message['content'] %}{% els"
    "e %}{% set content = message['content'] %}{% endif %}{% if message['role'] == 'user' %}{{ bos_"
    "token + '[INST] ' + content.strip() + ' [/INST]' }}{% elif message['role'] == 'assistant' %}{{"
    " ' '  + content.strip() + ' ' + eos_token }}{% endif %}{% endfor %}";

/* Mistral-7B-Instruct-v0.2's and Mixtral-8x7B-Instruct-v0.1's since 2024 (Mistral's "v1" with a
 * system prompt); the one they first shipped; Mistral-7B-Instruct-v0.3's ("v3": with tools or
 * tool calls it renders more, which loraft does not). */
static const char MISTRAL_JINJA[] =
    "{%- if messages[0]['role'] == 'system' %}\n"
    "    {%- set system_message = messages[0]['content'] %}\n"
    "    {%- set loop_messages = messages[1:] %}\n"
    "{%- else %}\n"
    "    {%- set loop_messages = messages %}\n"
    "{%- endif %}\n"
    "\n"
    "{{- bos_token }}\n"
    "{%- for message in loop_messages %}\n"
    "    {%- if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}\n"
    "        {{- raise_exception('After the optional system message, conversation roles must altern"
    "ate user/assistant/user/assistant/...') }}\n"
    "    {%- endif %}\n"
    "    {%- if message['role'] == 'user' %}\n"
    "        {%- if loop.first and system_message is defined %}\n"
    "            {{- ' [INST] ' + system_message + '\\n\\n' + message['content'] + ' [/INST]' }}\n"
    "        {%- else %}\n"
    "            {{- ' [INST] ' + message['content'] + ' [/INST]' }}\n"
    "        {%- endif %}\n"
    "    {%- elif message['role'] == 'assistant' %}\n"
    "        {{- ' ' + message['content'] + eos_token}}\n"
    "    {%- else %}\n"
    "        {{- raise_exception('Only user and assistant roles are supported, with the exception o"
    "f an initial optional system message!') }}\n"
    "    {%- endif %}\n"
    "{%- endfor %}\n";

static const char MISTRAL_LEGACY_JINJA[] =
    "{{ bos_token }}{% for message in messages %}{% if (message['role'] == 'user') != (loop.index0 "
    "% 2 == 0) %}{{ raise_exception('Conversation roles must alternate user/assistant/user/assistan"
    "t/...') }}{% endif %}{% if message['role'] == 'user' %}{{ '[INST] ' + message['content'] + ' ["
    "/INST]' }}{% elif message['role'] == 'assistant' %}{{ message['content'] + eos_token}}{% else "
    "%}{{ raise_exception('Only user and assistant roles are supported!') }}{% endif %}{% endfor "
    "%}";

/* The first 31 lines of Mistral v0.3's and Nemo's templates: the system message, the role
 * checks and the start of the first user turn's tools */
#define MISTRAL_V3_HEAD                                                                            \
    "{%- if messages[0][\"role\"] == \"system\" %}\n"                                              \
    "    {%- set system_message = messages[0][\"content\"] %}\n"                                   \
    "    {%- set loop_messages = messages[1:] %}\n"                                                \
    "{%- else %}\n"                                                                                \
    "    {%- set loop_messages = messages %}\n"                                                    \
    "{%- endif %}\n"                                                                               \
    "{%- if not tools is defined %}\n"                                                             \
    "    {%- set tools = none %}\n"                                                                \
    "{%- endif %}\n"                                                                               \
    "{%- set user_messages = loop_messages | selectattr(\"role\", \"equalto\", \"user\") | list "  \
    "%}"                                                                                           \
    "\n"                                                                                           \
    "\n"                                                                                           \
    "{#- This block checks for alternating user/assistant messages, skipping tool calling "        \
    "messages "                                                                                    \
    "#}\n"                                                                                         \
    "{%- set ns = namespace() %}\n"                                                                \
    "{%- set ns.index = 0 %}\n"                                                                    \
    "{%- for message in loop_messages %}\n"                                                        \
    "    {%- if not (message.role == \"tool\" or message.role == \"tool_results\" or "             \
    "(message.tool_"                                                                               \
    "calls is defined and message.tool_calls is not none)) %}\n"                                   \
    "        {%- if (message[\"role\"] == \"user\") != (ns.index % 2 == 0) %}\n"                   \
    "            {{- raise_exception(\"After the optional system message, conversation roles "     \
    "must a"                                                                                       \
    "lternate user/assistant/user/assistant/...\") }}\n"                                           \
    "        {%- endif %}\n"                                                                       \
    "        {%- set ns.index = ns.index + 1 %}\n"                                                 \
    "    {%- endif %}\n"                                                                           \
    "{%- endfor %}\n"                                                                              \
    "\n"                                                                                           \
    "{{- bos_token }}\n"                                                                           \
    "{%- for message in loop_messages %}\n"                                                        \
    "    {%- if message[\"role\"] == \"user\" %}\n"                                                \
    "        {%- if tools is not none and (message == user_messages[-1]) %}\n"

static const char MISTRAL_V3_JINJA[] = MISTRAL_V3_HEAD
    "            {{- \"[AVAILABLE_TOOLS] [\" }}\n"
    "            {%- for tool in tools %}\n"
    "                {%- set tool = tool.function %}\n"
    "                {{- '{\"type\": \"function\", \"function\": {' }}\n"
    "                {%- for key, val in tool.items() if key != \"return\" %}\n"
    "                    {%- if val is string %}\n"
    "                        {{- '\"' + key + '\": \"' + val + '\"' }}\n"
    "                    {%- else %}\n"
    "                        {{- '\"' + key + '\": ' + val|tojson }}\n"
    "                    {%- endif %}\n"
    "                    {%- if not loop.last %}\n"
    "                        {{- \", \" }}\n"
    "                    {%- endif %}\n"
    "                {%- endfor %}\n"
    "                {{- \"}}\" }}\n"
    "                {%- if not loop.last %}\n"
    "                    {{- \", \" }}\n"
    "                {%- else %}\n"
    "                    {{- \"]\" }}\n"
    "                {%- endif %}\n"
    "            {%- endfor %}\n"
    "            {{- \"[/AVAILABLE_TOOLS]\" }}\n"
    "            {%- endif %}\n"
    "        {%- if loop.last and system_message is defined %}\n"
    "            {{- \"[INST] \" + system_message + \"\\n\\n\" + message[\"content\"] + \"[/INST]\""
    " }}\n"
    "        {%- else %}\n"
    "            {{- \"[INST] \" + message[\"content\"] + \"[/INST]\" }}\n"
    "        {%- endif %}\n"
    "    {%- elif message.tool_calls is defined and message.tool_calls is not none %}\n"
    "        {{- \"[TOOL_CALLS] [\" }}\n"
    "        {%- for tool_call in message.tool_calls %}\n"
    "            {%- set out = tool_call.function|tojson %}\n"
    "            {{- out[:-1] }}\n"
    "            {%- if not tool_call.id is defined or tool_call.id|length != 9 %}\n"
    "                {{- raise_exception(\"Tool call IDs should be alphanumeric strings with length"
    " 9!\") }}\n"
    "            {%- endif %}\n"
    "            {{- ', \"id\": \"' + tool_call.id + '\"}' }}\n"
    "            {%- if not loop.last %}\n"
    "                {{- \", \" }}\n"
    "            {%- else %}\n"
    "                {{- \"]\" + eos_token }}\n"
    "            {%- endif %}\n"
    "        {%- endfor %}\n"
    "    {%- elif message[\"role\"] == \"assistant\" %}\n"
    "        {{- \" \" + message[\"content\"]|trim + eos_token}}\n"
    "    {%- elif message[\"role\"] == \"tool_results\" or message[\"role\"] == \"tool\" %}\n"
    "        {%- if message.content is defined and message.content.content is defined %}\n"
    "            {%- set content = message.content.content %}\n"
    "        {%- else %}\n"
    "            {%- set content = message.content %}\n"
    "        {%- endif %}\n"
    "        {{- '[TOOL_RESULTS] {\"content\": ' + content|string + \", \" }}\n"
    "        {%- if not message.tool_call_id is defined or message.tool_call_id|length != 9 %}\n"
    "            {{- raise_exception(\"Tool call IDs should be alphanumeric strings with length 9!"
    "\") }}\n"
    "        {%- endif %}\n"
    "        {{- '\"call_id\": \"' + message.tool_call_id + '\"}[/TOOL_RESULTS]' }}\n"
    "    {%- else %}\n"
    "        {{- raise_exception(\"Only user and assistant roles are supported, with the exception "
    "of an initial optional system message!\") }}\n"
    "    {%- endif %}\n"
    "{%- endfor %}\n";

/* Mistral-Nemo-Instruct-2407's ("v3-tekken": v3's without the spaces after [INST] and before an
 * answer, the answer not stripped; with tools or tool calls it renders more, which loraft does
 * not) */
static const char MISTRAL_NEMO_JINJA[] = MISTRAL_V3_HEAD
    "            {{- \"[AVAILABLE_TOOLS][\" }}\n"
    "            {%- for tool in tools %}\n"
    "                {%- set tool = tool.function %}\n"
    "                {{- '{\"type\": \"function\", \"function\": {' }}\n"
    "                {%- for key, val in tool.items() if key != \"return\" %}\n"
    "                    {%- if val is string %}\n"
    "                        {{- '\"' + key + '\": \"' + val + '\"' }}\n"
    "                    {%- else %}\n"
    "                        {{- '\"' + key + '\": ' + val|tojson }}\n"
    "                    {%- endif %}\n"
    "                    {%- if not loop.last %}\n"
    "                        {{- \", \" }}\n"
    "                    {%- endif %}\n"
    "                {%- endfor %}\n"
    "                {{- \"}}\" }}\n"
    "                {%- if not loop.last %}\n"
    "                    {{- \", \" }}\n"
    "                {%- else %}\n"
    "                    {{- \"]\" }}\n"
    "                {%- endif %}\n"
    "            {%- endfor %}\n"
    "            {{- \"[/AVAILABLE_TOOLS]\" }}\n"
    "            {%- endif %}\n"
    "        {%- if loop.last and system_message is defined %}\n"
    "            {{- \"[INST]\" + system_message + \"\\n\\n\" + message[\"content\"] + \"[/INST]\" "
    "}}\n"
    "        {%- else %}\n"
    "            {{- \"[INST]\" + message[\"content\"] + \"[/INST]\" }}\n"
    "        {%- endif %}\n"
    "    {%- elif (message.tool_calls is defined and message.tool_calls is not none) %}\n"
    "        {{- \"[TOOL_CALLS][\" }}\n"
    "        {%- for tool_call in message.tool_calls %}\n"
    "            {%- set out = tool_call.function|tojson %}\n"
    "            {{- out[:-1] }}\n"
    "            {%- if not tool_call.id is defined or tool_call.id|length != 9 %}\n"
    "                {{- raise_exception(\"Tool call IDs should be alphanumeric strings with length"
    " 9!\") }}\n"
    "            {%- endif %}\n"
    "            {{- ', \"id\": \"' + tool_call.id + '\"}' }}\n"
    "            {%- if not loop.last %}\n"
    "                {{- \", \" }}\n"
    "            {%- else %}\n"
    "                {{- \"]\" + eos_token }}\n"
    "            {%- endif %}\n"
    "        {%- endfor %}\n"
    "    {%- elif message[\"role\"] == \"assistant\" %}\n"
    "        {{- message[\"content\"] + eos_token}}\n"
    "    {%- elif message[\"role\"] == \"tool_results\" or message[\"role\"] == \"tool\" %}\n"
    "        {%- if message.content is defined and message.content.content is defined %}\n"
    "            {%- set content = message.content.content %}\n"
    "        {%- else %}\n"
    "            {%- set content = message.content %}\n"
    "        {%- endif %}\n"
    "        {{- '[TOOL_RESULTS]{\"content\": ' + content|string + \", \" }}\n"
    "        {%- if not message.tool_call_id is defined or message.tool_call_id|length != 9 %}\n"
    "            {{- raise_exception(\"Tool call IDs should be alphanumeric strings with length 9!"
    "\") }}\n"
    "        {%- endif %}\n"
    "        {{- '\"call_id\": \"' + message.tool_call_id + '\"}[/TOOL_RESULTS]' }}\n"
    "    {%- else %}\n"
    "        {{- raise_exception(\"Only user and assistant roles are supported, with the exception "
    "of an initial optional system message!\") }}\n"
    "    {%- endif %}\n"
    "{%- endfor %}\n";

/* zephyr-7b-beta's, which TinyLlama-1.1B-Chat-v1.0 copied: a newline character inside the
 * literals, as their tokenizer_config.json has it */
static const char ZEPHYR_JINJA[] = "{% for message in messages %}\n"
                                   "{% if message['role'] == 'user' %}\n"
                                   "{{ '<|user|>\n' + message['content'] + eos_token }}\n"
                                   "{% elif message['role'] == 'system' %}\n"
                                   "{{ '<|system|>\n' + message['content'] + eos_token }}\n"
                                   "{% elif message['role'] == 'assistant' %}\n"
                                   "{{ '<|assistant|>\n'  + message['content'] + eos_token }}\n"
                                   "{% endif %}\n"
                                   "{% if loop.last and add_generation_prompt %}\n"
                                   "{{ '<|assistant|>' }}\n"
                                   "{% endif %}\n"
                                   "{% endfor %}";

/* Gemma 1's and 2's instruct template (gemma-7b-it, gemma-1.1-*-it and gemma-2-*-it carry the
 * same): no system turn. */
static const char GEMMA2_JINJA[] =
    "{{ bos_token }}{% if messages[0]['role'] == 'system' %}{{ raise_exception('System role not "
    "supported') }}{% endif %}{% for message in messages %}{% if (message['role'] == 'user') != "
    "(loop.index0 % 2 == 0) %}{{ raise_exception('Conversation roles must alternate "
    "user/assistant/user/assistant/...') }}{% endif %}{% if (message['role'] == 'assistant') %}{% "
    "set role = 'model' %}{% else %}{% set role = message['role'] %}{% endif %}{{ "
    "'<start_of_turn>' + role + '\\n' + message['content'] | trim + '<end_of_turn>\\n' }}{% "
    "endfor %}{% if add_generation_prompt %}{{'<start_of_turn>model\\n'}}{% endif %}";

/* Gemma 3's (gemma-3-*-it, 270m to 27b): a system turn goes at the head of the first user turn.
 * Its image and list contents loraft does not render (contents are strings). */
static const char GEMMA3_JINJA[] =
    "{{ bos_token }}\n"
    "{%- if messages[0]['role'] == 'system' -%}\n"
    "    {%- if messages[0]['content'] is string -%}\n"
    "        {%- set first_user_prefix = messages[0]['content'] + '\\n\\n' -%}\n"
    "    {%- else -%}\n"
    "        {%- set first_user_prefix = messages[0]['content'][0]['text'] + '\\n\\n' -%}\n"
    "    {%- endif -%}\n"
    "    {%- set loop_messages = messages[1:] -%}\n"
    "{%- else -%}\n"
    "    {%- set first_user_prefix = \"\" -%}\n"
    "    {%- set loop_messages = messages -%}\n"
    "{%- endif -%}\n"
    "{%- for message in loop_messages -%}\n"
    "    {%- if (message['role'] == 'user') != (loop.index0 % 2 == 0) -%}\n"
    "        {{ raise_exception(\"Conversation roles must alternate "
    "user/assistant/user/assistant/...\") }}\n"
    "    {%- endif -%}\n"
    "    {%- if (message['role'] == 'assistant') -%}\n"
    "        {%- set role = \"model\" -%}\n"
    "    {%- else -%}\n"
    "        {%- set role = message['role'] -%}\n"
    "    {%- endif -%}\n"
    "    {{ '<start_of_turn>' + role + '\\n' + (first_user_prefix if loop.first else \"\") }}\n"
    "    {%- if message['content'] is string -%}\n"
    "        {{ message['content'] | trim }}\n"
    "    {%- elif message['content'] is iterable -%}\n"
    "        {%- for item in message['content'] -%}\n"
    "            {%- if item['type'] == 'image' -%}\n"
    "                {{ '<start_of_image>' }}\n"
    "            {%- elif item['type'] == 'text' -%}\n"
    "                {{ item['text'] | trim }}\n"
    "            {%- endif -%}\n"
    "        {%- endfor -%}\n"
    "    {%- else -%}\n"
    "        {{ raise_exception(\"Invalid content type\") }}\n"
    "    {%- endif -%}\n"
    "    {{ '<end_of_turn>\\n' }}\n"
    "{%- endfor -%}\n"
    "{%- if add_generation_prompt -%}\n"
    "    {{'<start_of_turn>model\\n'}}\n"
    "{%- endif -%}\n";

/* Phi-3.5-mini-instruct's: a newline character inside the literals; an empty system turn renders
 * nothing, and a conversation without the generation prompt ends with EOS */
static const char PHI3_JINJA[] =
    "{% for message in messages %}{% if message['role'] == 'system' and message['content'] %}{{'"
    "<|system|>\n' + message['content'] + '<|end|>\n'}}{% elif message['role'] == 'user' %}{{'"
    "<|user|>\n' + message['content'] + '<|end|>\n'}}{% elif message['role'] == 'assistant' %}{{'"
    "<|assistant|>\n' + message['content'] + '<|end|>\n'}}{% endif %}{% endfor %}{% if "
    "add_generation_prompt %}{{ '<|assistant|>\n' }}{% else %}{{ eos_token }}{% endif %}";

/* Phi-4-mini-instruct's: no newline after the role; a system message with "tools" (which
 * loraft's messages never have) renders them too */
static const char PHI4_MINI_JINJA[] =
    "{% for message in messages %}{% if message['role'] == 'system' and 'tools' in message and "
    "message['tools'] is not none %}{{ '<|' + message['role'] + '|>' + message['content'] + "
    "'<|tool|>' + message['tools'] + '<|/tool|>' + '<|end|>' }}{% else %}{{ '<|' + "
    "message['role'] + '|>' + message['content'] + '<|end|>' }}{% endif %}{% endfor %}{% if "
    "add_generation_prompt %}{{ '<|assistant|>' }}{% else %}{{ eos_token }}{% endif %}";

/* generation_config.json's eos_token_id of Llama 3.1 to 3.3 Instruct, as text */
#define LLAMA31_STOPS "<|eot_id|>", "<|eom_id|>", "<|end_of_text|>", NULL

/* name, format, default system turn, stops, date, BOS and EOS text (NULL: "<s>", "</s>"; Gemma's
 * tokenizers have "<bos>", Phi-3's "<|endoftext|>") */
static const ChatTemplate templates[] = {
    {"chatml", CHAT_FORMAT_CHATML, NULL, {"<|im_end|>", NULL}, NULL, NULL, NULL},
    {"smollm2", CHAT_FORMAT_CHATML, SMOLLM2_SYSTEM, {"<|im_end|>", NULL}, NULL, NULL, NULL},
    {"qwen2", CHAT_FORMAT_CHATML, QWEN2_SYSTEM, {"<|im_end|>", NULL}, NULL, NULL, NULL},
    {"qwen2.5", CHAT_FORMAT_CHATML, QWEN25_SYSTEM, {"<|im_end|>", NULL}, NULL, NULL, NULL},
    {"llama3", CHAT_FORMAT_LLAMA3, NULL, {"<|eot_id|>", "<|end_of_text|>", NULL}, NULL, NULL, NULL},
    {"llama3.1", CHAT_FORMAT_LLAMA31, NULL, {LLAMA31_STOPS}, "26 Jul 2024", NULL, NULL},
    {"llama3.2", CHAT_FORMAT_LLAMA31, NULL, {LLAMA31_STOPS}, NULL, NULL, NULL},
    {"qwen3", CHAT_FORMAT_QWEN3, NULL, {"<|im_end|>", NULL}, NULL, NULL, NULL},
    {"qwen3-nothink", CHAT_FORMAT_QWEN3_NO_THINKING, NULL, {"<|im_end|>", NULL}, NULL, NULL, NULL},
    {"smollm3", CHAT_FORMAT_SMOLLM3, NULL, {"<|im_end|>", NULL}, SMOLLM3_DATE, NULL, NULL},
    {"smollm3-nothink",
     CHAT_FORMAT_SMOLLM3_NO_THINKING,
     NULL,
     {"<|im_end|>", NULL},
     SMOLLM3_DATE,
     NULL,
     NULL},
    {"llama2", CHAT_FORMAT_LLAMA2, NULL, {"</s>", NULL}, NULL, NULL, NULL},
    {"mistral", CHAT_FORMAT_MISTRAL, NULL, {"</s>", NULL}, NULL, NULL, NULL},
    {"mistral-v0.3", CHAT_FORMAT_MISTRAL_V3, NULL, {"</s>", NULL}, NULL, NULL, NULL},
    {"mistral-legacy", CHAT_FORMAT_MISTRAL_LEGACY, NULL, {"</s>", NULL}, NULL, NULL, NULL},
    {"mistral-nemo", CHAT_FORMAT_MISTRAL_NEMO, NULL, {"</s>", NULL}, NULL, NULL, NULL},
    {"zephyr", CHAT_FORMAT_ZEPHYR, NULL, {"</s>", NULL}, NULL, NULL, NULL},
    {"gemma", CHAT_FORMAT_GEMMA, NULL, {"<end_of_turn>", NULL}, NULL, "<bos>", NULL},
    {"gemma2", CHAT_FORMAT_GEMMA2, NULL, {"<end_of_turn>", NULL}, NULL, "<bos>", NULL},
    {"phi3", CHAT_FORMAT_PHI3, NULL, {"<|end|>", NULL}, NULL, NULL, "<|endoftext|>"},
    {"phi4-mini", CHAT_FORMAT_PHI4_MINI, NULL, {"<|end|>", NULL}, NULL, NULL, "<|endoftext|>"},
    {"plain", CHAT_FORMAT_PLAIN, NULL, {"\nUser:", NULL}, NULL, NULL, NULL},
};
enum { N_TEMPLATES = sizeof templates / sizeof templates[0] };

/* Jinja texts recognised, each with the name of the template it renders as. */
static const struct {
    const char *name, *jinja;
} known[] = {
    {"chatml", "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + "
               "message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if "
               "add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"},
    {"smollm2", CHATML_WITH_SYSTEM(SMOLLM2_SYSTEM)},
    {"qwen2", CHATML_WITH_SYSTEM(QWEN2_SYSTEM)},
    {"qwen2.5", QWEN25_JINJA},
    {"llama3", "{% set loop_messages = messages %}{% for message in loop_messages %}{% set "
               "content = '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'+ "
               "message['content'] | trim + '<|eot_id|>' %}{% if loop.index0 == 0 %}{% set "
               "content = bos_token + content %}{% endif %}{{ content }}{% endfor %}{% if "
               "add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' "
               "}}{% endif %}"},
    {"llama3.1", LLAMA31_JINJA},
    {"llama3.2", LLAMA32_JINJA},
    {"qwen3", QWEN3_JINJA},
    {"smollm3", SMOLLM3_JINJA},
    {"llama2", LLAMA2_JINJA},
    {"mistral", MISTRAL_JINJA},
    {"mistral-v0.3", MISTRAL_V3_JINJA},
    {"mistral-legacy", MISTRAL_LEGACY_JINJA},
    {"mistral-nemo", MISTRAL_NEMO_JINJA},
    {"zephyr", ZEPHYR_JINJA},
    {"gemma", GEMMA3_JINJA},
    {"gemma2", GEMMA2_JINJA},
    {"phi3", PHI3_JINJA},
    {"phi4-mini", PHI4_MINI_JINJA},
    {"plain", "{% for message in messages %}{% if message['role'] == 'system' %}{{ "
              "message['content'] + '\n\n' }}{% elif message['role'] == 'user' %}{{ 'User: ' + "
              "message['content'] + '\n\n' }}{% else %}{{ 'Assistant: ' + message['content'] + "
              "'\n\n' }}{% endif %}{% endfor %}{% if add_generation_prompt %}{{ 'Assistant:' "
              "}}{% endif %}"},
};
enum { N_KNOWN = sizeof known / sizeof known[0] };

const char *chat_template_names(void) {
    return "chatml, smollm2, qwen2, qwen2.5, qwen3, qwen3-nothink, smollm3, smollm3-nothink, "
           "llama3, llama3.1, llama3.2, llama2, mistral, mistral-v0.3, mistral-legacy, "
           "mistral-nemo, zephyr, gemma, gemma2, phi3, phi4-mini, plain";
}

int chat_template_by_name(const char *name, ChatTemplate *out, LfError *err) {
    for (int i = 0; i < N_TEMPLATES; i++) {
        if (name && !strcmp(name, templates[i].name)) {
            *out = templates[i];
            return 0;
        }
    }
    return lf_fail(err, "unknown chat template name \"%s\" (built-in: %s)", name ? name : "(null)",
                   chat_template_names());
}

/* The templates whose Jinja renders bos_token, and those that render eos_token. */
static int renders_bos(ChatFormat f) {
    return f == CHAT_FORMAT_LLAMA2 || f == CHAT_FORMAT_MISTRAL || f == CHAT_FORMAT_MISTRAL_V3 ||
           f == CHAT_FORMAT_MISTRAL_LEGACY || f == CHAT_FORMAT_MISTRAL_NEMO ||
           f == CHAT_FORMAT_GEMMA || f == CHAT_FORMAT_GEMMA2;
}

static int renders_eos(ChatFormat f) {
    return f == CHAT_FORMAT_LLAMA2 || f == CHAT_FORMAT_MISTRAL || f == CHAT_FORMAT_MISTRAL_V3 ||
           f == CHAT_FORMAT_MISTRAL_LEGACY || f == CHAT_FORMAT_MISTRAL_NEMO ||
           f == CHAT_FORMAT_ZEPHYR || f == CHAT_FORMAT_PHI3 || f == CHAT_FORMAT_PHI4_MINI;
}

static const char *bos_text(const ChatTemplate *t) {
    return t->bos ? t->bos : "<s>";
}

static const char *eos_text(const ChatTemplate *t) {
    return t->eos ? t->eos : "</s>";
}

void chat_template_set_specials(ChatTemplate *t, const char *bos, const char *eos) {
    if (bos && renders_bos(t->format)) t->bos = bos;
    if (!eos || !renders_eos(t->format)) return;
    for (int i = 0; *eos && t->stops[i]; i++) /* the EOS that ends turns (not Phi-3's) is a stop */
        if (!strcmp(t->stops[i], eos_text(t))) t->stops[i] = eos;
    t->eos = eos;
}

void chat_template_set_vocab_specials(ChatTemplate *t, const Bpe *bpe) {
    int32_t bos = bpe_bos(bpe), eos = bpe_eos(bpe);
    chat_template_set_specials(t, bos >= 0 ? bpe_token(bpe, bos) : NULL,
                               eos >= 0 ? bpe_token(bpe, eos) : NULL);
}

/* jinja with each "\n" escape turned into a newline ("\\" stays as it is) and one trailing
 * newline dropped; NULL when out of memory. */
static char *normalise_jinja(const char *jinja) {
    size_t n = strlen(jinja), o = 0;
    char *s = malloc(n + 1);
    if (!s) return NULL;
    for (size_t i = 0; i < n; i++) {
        if (jinja[i] == '\\' && jinja[i + 1] == 'n') {
            s[o++] = '\n';
            i++;
        } else if (jinja[i] == '\\' && jinja[i + 1] == '\\') {
            s[o++] = jinja[i++];
            s[o++] = jinja[i];
        } else {
            s[o++] = jinja[i];
        }
    }
    if (o && s[o - 1] == '\n') o--;
    s[o] = '\0';
    return s;
}

int chat_template_detect(const char *jinja, ChatTemplate *out, LfError *err) {
    if (!jinja || !*jinja)
        return lf_fail(err,
                       "the model has no chat template; choose one by name (built-in: %s; "
                       "plain suits base models)",
                       chat_template_names());
    char *s = normalise_jinja(jinja);
    if (!s) return lf_fail(err, "chat template: out of memory");
    const char *name = NULL;
    for (int i = 0; i < N_KNOWN && !name; i++) { /* the known texts as a model carries them */
        char *k = normalise_jinja(known[i].jinja);
        if (!k) return free(s), lf_fail(err, "chat template: out of memory");
        if (!strcmp(s, k)) name = known[i].name;
        free(k);
    }
    free(s);
    if (name) return chat_template_by_name(name, out, err);
    return lf_fail(err,
                   "unrecognised chat template (%zu bytes, begins \"%.60s\"); loraft renders "
                   "only its built-in templates, choose one by name: %s",
                   strlen(jinja), jinja, chat_template_names());
}

/* ---- rendering ---- */

typedef struct Buf {
    char *p;
    size_t len, cap;
    int oom;
} Buf;

static void buf_add(Buf *b, const char *s, size_t n) {
    if (b->oom) return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n + 1) cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) {
            b->oom = 1;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void buf_str(Buf *b, const char *s) {
    buf_add(b, s, strlen(s));
}

/* Python's str.isspace() code points (str.strip() with no argument removes these). */
static int py_space(uint32_t c) {
    return (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x20) || c == 0x85 || c == 0xA0 ||
           c == 0x1680 || (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 ||
           c == 0x202F || c == 0x205F || c == 0x3000;
}

/* Length of the whitespace code point at s[0..n), 0 if s does not start with one. */
static size_t space_at(const char *s, size_t n) {
    const unsigned char *u = (const unsigned char *)s;
    uint32_t c = u[0];
    int len = c < 0x80 ? 1 : utf8_decode(u, n, &c);
    return len && py_space(c) ? (size_t)len : 0;
}

/* Length of the whitespace code point that ends s[0..n), 0 if none. Invalid UTF-8 is not
 * whitespace. */
static size_t space_before(const char *s, size_t n) {
    size_t start = n - 1;
    while (start > 0 && n - start < 4 && ((unsigned char)s[start] & 0xC0) == 0x80) start--;
    size_t len = space_at(s + start, n - start);
    return len == n - start ? len : 0;
}

/* The length of s[0..n) without its trailing whitespace: Python's str.rstrip(). */
static size_t rstripped(const char *s, size_t n) {
    size_t k;
    while (n && (k = space_before(s, n))) n -= k;
    return n;
}

/* Jinja's trim filter, i.e. Python's str.strip(), as a [begin, end) range of s. */
static void py_strip(const char *s, size_t *begin, size_t *end) {
    size_t b = 0, e = strlen(s), k;
    while (b < e && (k = space_at(s + b, e - b))) b += k;
    *begin = b;
    *end = b + rstripped(s + b, e - b);
}

/* s stripped as Jinja's trim filter strips it. */
static void buf_trimmed(Buf *b, const char *s) {
    size_t begin, end;
    py_strip(s, &begin, &end);
    buf_add(b, s + begin, end - begin);
}

static void chatml_turn(Buf *b, const char *role, const char *content) {
    buf_str(b, "<|im_start|>");
    buf_str(b, role);
    buf_str(b, "\n");
    buf_str(b, content);
    buf_str(b, "<|im_end|>\n");
}

static void render_chatml(const ChatTemplate *t, const ChatMessage *m, int i, Buf *b) {
    if (i == 0 && t->default_system && strcmp(m->role, "system"))
        chatml_turn(b, "system", t->default_system);
    chatml_turn(b, m->role, m->content);
}

static void llama3_turn(Buf *b, const char *role, const char *content) {
    buf_str(b, "<|start_header_id|>");
    buf_str(b, role);
    buf_str(b, "<|end_header_id|>\n\n");
    buf_trimmed(b, content);
    buf_str(b, "<|eot_id|>");
}

static void render_llama3(const ChatMessage *m, int i, Buf *b) {
    if (i == 0) buf_str(b, "<|begin_of_text|>");
    llama3_turn(b, m->role, m->content);
}

/* The date a system turn writes: the template's, else today's as transformers' strftime_now(fmt)
 * writes it (local time) into today[0..cap), else fallback. */
static const char *template_date(const ChatTemplate *t, const char *fmt, const char *fallback,
                                 char *today, size_t cap) {
    time_t now = time(NULL);
    struct tm tm;
    if (t->date) return t->date;
    return localtime_r(&now, &tm) && strftime(today, cap, fmt, &tm) ? today : fallback;
}

/* Llama 3.1's system turn, always there: the dates, then msgs[0]'s content when it is a system
 * turn. Returns the messages it took (0 or 1). */
static int llama31_system(const ChatTemplate *t, const ChatMessage *msgs, Buf *b) {
    char today[32]; /* 26 Jul 2024: the template's own fallback where strftime_now is missing */
    buf_str(b, "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\n"
               "Cutting Knowledge Date: December 2023\nToday Date: ");
    buf_str(b, template_date(t, "%d %b %Y", "26 Jul 2024", today, sizeof today));
    buf_str(b, "\n\n");
    int system = !strcmp(msgs[0].role, "system");
    if (system) buf_trimmed(b, msgs[0].content);
    buf_str(b, "<|eot_id|>");
    return system;
}

static void render_llama31(const ChatTemplate *t, const ChatMessage *msgs, int n, Buf *b) {
    for (int i = llama31_system(t, msgs, b); i < n; i++)
        llama3_turn(b, msgs[i].role, msgs[i].content);
}

/* ---- Qwen3: Python's string methods on [s, s + n) ---- */

/* The text after the last sep (all of s when there is none): s.split(sep)[-1]. */
static const char *after_last(const char *s, size_t *n, const char *sep) {
    size_t k = strlen(sep);
    for (size_t i = *n; i >= k; i--)
        if (!memcmp(s + i - k, sep, k)) {
            *n -= i;
            return s + i;
        }
    return s;
}

/* s.strip('\n') on the sides asked for. */
static const char *strip_newlines(const char *s, size_t *n, int left, int right) {
    while (left && *n && *s == '\n') s++, (*n)--;
    while (right && *n && s[*n - 1] == '\n') (*n)--;
    return s;
}

/* A user turn that only carries a tool's response does not count as the query. */
static int tool_response(const char *s) {
    size_t n = strlen(s), a = strlen("<tool_response>"), z = strlen("</tool_response>");
    return n >= a && !memcmp(s, "<tool_response>", a) && n >= z &&
           !memcmp(s + n - z, "</tool_response>", z);
}

/* An assistant turn: with its reasoning in a think block after the last query when it is the
 * last message or has reasoning, else its answer alone. */
static void qwen3_assistant(const char *content, int after_query, int last, Buf *b) {
    size_t n = strlen(content), rn = 0;
    const char *answer = content, *reason = "";
    const char *end_think = strstr(content, "</think>");
    if (end_think) {
        answer = strip_newlines(after_last(content, &n, "</think>"), &n, 1, 0);
        rn = (size_t)(end_think - content);
        reason = strip_newlines(content, &rn, 0, 1);
        reason = strip_newlines(after_last(reason, &rn, "<think>"), &rn, 1, 0);
    }
    buf_str(b, "<|im_start|>assistant\n");
    if (after_query && (last || rn)) {
        buf_str(b, "<think>\n");
        reason = strip_newlines(reason, &rn, 1, 1);
        buf_add(b, reason, rn);
        buf_str(b, "\n</think>\n\n");
        answer = strip_newlines(answer, &n, 1, 0);
    }
    buf_add(b, answer, n);
    buf_str(b, "<|im_end|>\n");
}

static void render_qwen3(const ChatMessage *msgs, int n, Buf *b) {
    int query = n - 1; /* the last user turn; the last message when there is none */
    for (int i = n - 1; i >= 0; i--)
        if (!strcmp(msgs[i].role, "user") && !tool_response(msgs[i].content)) {
            query = i;
            break;
        }
    for (int i = 0; i < n; i++) {
        if (!strcmp(msgs[i].role, "assistant"))
            qwen3_assistant(msgs[i].content, i > query, i == n - 1, b);
        else
            chatml_turn(b, msgs[i].role, msgs[i].content);
    }
}

static void render_plain(const ChatMessage *m, Buf *b) {
    if (!strcmp(m->role, "user")) buf_str(b, "User: ");
    if (!strcmp(m->role, "assistant")) buf_str(b, "Assistant: ");
    buf_str(b, m->content);
    buf_str(b, "\n\n");
}

/* ---- the [INST] templates (Llama 2, Mistral), Zephyr and Phi-3 ---- */

static int is_role(const ChatMessage *m, const char *role) {
    return !strcmp(m->role, role);
}

/* What an [INST] or Gemma template raises on, in its order: a first system turn, where the
 * template has none (no_system); the turns after an initial system turn (all turns when the
 * template has none) must alternate user, assistant, ...; then a turn other than user or
 * assistant is an error (checked turn by turn, or after the alternation of all of them), or
 * renders nothing (roles NULL; Gemma's render it as a turn of its role). */
typedef struct TurnRules {
    int initial_system; /* a first system turn stands apart */
    int roles_after;    /* roles checked after the alternation of every turn */
    const char *alternate, *roles;
    const char *no_system; /* the error for a first system turn; NULL: none */
} TurnRules;

/* How Mistral's [INST] templates differ. */
typedef struct MistralStyle {
    TurnRules rules;
    const char *open, *close; /* around a user turn's content */
    const char *answer;       /* before an assistant turn's content */
    int trim_answer;          /* the answer stripped (Jinja's trim) */
    int system_in_last;       /* the system turn goes into the last message, else the first */
} MistralStyle;

static const TurnRules after_system = {1, 0, ALTERNATE, NULL, NULL}; /* Llama 2's, Gemma 3's */
static const TurnRules gemma2_rules = {0, 0, ALTERNATE, NULL, SYSTEM_NOT_SUPPORTED};
static const MistralStyle mistral_v1 = {
    {1, 0, ALTERNATE_AFTER_SYSTEM, ONLY_USER_ASSISTANT_SYSTEM, NULL},
    " [INST] ",
    " [/INST]",
    " ",
    0,
    0};
static const MistralStyle mistral_v3 = {
    {1, 1, ALTERNATE_AFTER_SYSTEM, ONLY_USER_ASSISTANT_SYSTEM, NULL},
    "[INST] ",
    "[/INST]",
    " ",
    1,
    1};
static const MistralStyle mistral_legacy = {
    {0, 0, ALTERNATE, ONLY_USER_ASSISTANT, NULL}, "[INST] ", " [/INST]", "", 0, 0};
static const MistralStyle mistral_nemo = {
    {1, 1, ALTERNATE_AFTER_SYSTEM, ONLY_USER_ASSISTANT_SYSTEM, NULL},
    "[INST]",
    "[/INST]",
    "",
    0,
    1};

static const MistralStyle *mistral_style(ChatFormat f) {
    return f == CHAT_FORMAT_MISTRAL          ? &mistral_v1
           : f == CHAT_FORMAT_MISTRAL_V3     ? &mistral_v3
           : f == CHAT_FORMAT_MISTRAL_LEGACY ? &mistral_legacy
           : f == CHAT_FORMAT_MISTRAL_NEMO   ? &mistral_nemo
                                             : NULL;
}

static int turn_error(const ChatTemplate *t, const ChatMessage *msgs, int i, const char *what,
                      LfError *err) {
    return lf_fail(err, "chat template %s: message %d (%s): %s", t->name, i, msgs[i].role, what);
}

static int check_rules(const ChatTemplate *t, const TurnRules *r, const ChatMessage *msgs, int n,
                       LfError *err) {
    if (r->no_system && is_role(&msgs[0], "system"))
        return turn_error(t, msgs, 0, r->no_system, err);
    int first = r->initial_system && is_role(&msgs[0], "system");
    for (int i = first; i < n; i++) {
        int other = !is_role(&msgs[i], "user") && !is_role(&msgs[i], "assistant");
        if (is_role(&msgs[i], "user") != ((i - first) % 2 == 0))
            return turn_error(t, msgs, i, r->alternate, err);
        if (other && r->roles && !r->roles_after) return turn_error(t, msgs, i, r->roles, err);
    }
    for (int i = first; r->roles_after && i < n; i++)
        if (!is_role(&msgs[i], "user") && !is_role(&msgs[i], "assistant"))
            return turn_error(t, msgs, i, r->roles, err);
    return 0;
}

/* The rules of the templates that raise errors; NULL for the others. */
static const TurnRules *turn_rules(ChatFormat f) {
    const MistralStyle *s = mistral_style(f);
    return s                                                   ? &s->rules
           : f == CHAT_FORMAT_LLAMA2 || f == CHAT_FORMAT_GEMMA ? &after_system
           : f == CHAT_FORMAT_GEMMA2                           ? &gemma2_rules
                                                               : NULL;
}

/* The template's errors, and mistral-v0.3's refusal of a system turn it would drop (chat.h). */
static int check_turns(const ChatTemplate *t, const ChatMessage *msgs, int n, LfError *err) {
    const MistralStyle *s = mistral_style(t->format);
    const TurnRules *r = turn_rules(t->format);
    if (r && check_rules(t, r, msgs, n, err)) return -1;
    if (s && s->system_in_last && is_role(&msgs[0], "system") && !is_role(&msgs[n - 1], "user"))
        return lf_fail(err,
                       "chat template %s: message 0 (system): the template " V3_REFUSAL
                       " (inside it) and drops it from any other; loraft refuses the system "
                       "message rather than drop it (an SFT prompt would not be a prefix of its "
                       "conversation)",
                       t->name);
    return 0;
}

/* Llama 2's first user turn after a system turn: the whole text stripped. */
static void llama2_with_system(Buf *b, const char *system, const char *content) {
    Buf tmp = {0};
    buf_str(&tmp, "<<SYS>>\n");
    buf_str(&tmp, system);
    buf_str(&tmp, "\n<</SYS>>\n\n");
    buf_str(&tmp, content);
    if (tmp.oom)
        b->oom = 1;
    else
        buf_trimmed(b, tmp.p);
    free(tmp.p);
}

static void render_llama2(const ChatTemplate *t, const ChatMessage *msgs, int n, Buf *b) {
    int first = is_role(&msgs[0], "system");
    for (int i = first; i < n; i++) {
        if (is_role(&msgs[i], "user")) {
            buf_str(b, bos_text(t));
            buf_str(b, "[INST] ");
            if (first && i == 1)
                llama2_with_system(b, msgs[0].content, msgs[1].content);
            else
                buf_trimmed(b, msgs[i].content);
            buf_str(b, " [/INST]");
        } else if (is_role(&msgs[i], "assistant")) {
            buf_str(b, " ");
            buf_trimmed(b, msgs[i].content);
            buf_str(b, " ");
            buf_str(b, eos_text(t));
        } /* a later system turn at an odd place renders nothing, as in the template */
    }
}

/* After check_turns: user and assistant turns alternate after the optional system turn. */
static void render_mistral(const ChatTemplate *t, const MistralStyle *s, const ChatMessage *msgs,
                           int n, Buf *b) {
    int first = s->rules.initial_system && is_role(&msgs[0], "system");
    buf_str(b, bos_text(t));
    for (int i = first; i < n; i++) {
        if (is_role(&msgs[i], "user")) {
            buf_str(b, s->open);
            if (first && i == (s->system_in_last ? n - 1 : 1)) {
                buf_str(b, msgs[0].content);
                buf_str(b, "\n\n");
            }
            buf_str(b, msgs[i].content);
            buf_str(b, s->close);
        } else {
            buf_str(b, s->answer);
            if (s->trim_answer)
                buf_trimmed(b, msgs[i].content);
            else
                buf_str(b, msgs[i].content);
            buf_str(b, eos_text(t));
        }
    }
}

/* Gemma's: BOS, then per turn "<start_of_turn>" role "\n" content (stripped) "<end_of_turn>\n",
 * "assistant" spelled "model"; Gemma 3's puts a first system turn's content + "\n\n" at the
 * head of the next turn (Gemma 2's refused it in check_turns). */
static void render_gemma(const ChatTemplate *t, const ChatMessage *msgs, int n, Buf *b) {
    int first = is_role(&msgs[0], "system");
    buf_str(b, bos_text(t));
    for (int i = first; i < n; i++) {
        buf_str(b, "<start_of_turn>");
        buf_str(b, is_role(&msgs[i], "assistant") ? "model" : msgs[i].role);
        buf_str(b, "\n");
        if (first && i == 1) {
            buf_str(b, msgs[0].content);
            buf_str(b, "\n\n");
        }
        buf_trimmed(b, msgs[i].content);
        buf_str(b, "<end_of_turn>\n");
    }
}

/* Zephyr's, Phi-3's and Phi-4-mini's turn: "<|" role "|>" sep content end */
static void tagged_turn(Buf *b, const ChatMessage *m, const char *sep, const char *end) {
    buf_str(b, "<|");
    buf_str(b, m->role);
    buf_str(b, "|>");
    buf_str(b, sep);
    buf_str(b, m->content);
    buf_str(b, end);
}

static void render_zephyr(const ChatTemplate *t, const ChatMessage *m, Buf *b) {
    tagged_turn(b, m, "\n", eos_text(t));
    buf_str(b, "\n");
}

static void render_phi3(const ChatMessage *m, Buf *b) {
    if (!is_role(m, "system") || *m->content) tagged_turn(b, m, "\n", "<|end|>\n");
}

/* ---- SmolLM3 ---- */

/* Python's s.replace(old, "").rstrip() as a new string; NULL when out of memory. */
static char *removed(const char *s, const char *old) {
    Buf b = {0};
    size_t k = strlen(old);
    for (const char *hit; (hit = strstr(s, old)); s = hit + k) buf_add(&b, s, (size_t)(hit - s));
    buf_str(&b, s);
    if (b.oom) return free(b.p), NULL;
    b.p[rstripped(b.p, b.len)] = '\0';
    return b.p;
}

/* The template's custom instructions: the system message without "/no_think" and "/think",
 * right-stripped, and without "/system_override" too when asked; an rstrip() after each replace()
 * leaves what the template's one at the end leaves, as the flags hold no whitespace. NULL when
 * out of memory. */
static char *smollm3_instructions(const char *system, int override) {
    char *a = removed(system, "/no_think"), *c = a ? removed(a, "/think") : NULL;
    free(a);
    if (!c || !override) return c;
    a = removed(c, "/system_override");
    free(c);
    return a;
}

/* The system message ("" when the first message is not a system turn, as the template reads an
 * undefined one). */
static const char *smollm3_system_message(const ChatMessage *msgs) {
    return is_role(&msgs[0], "system") ? msgs[0].content : "";
}

/* Whether SmolLM3's template reasons: the system message's /no_think, else its /think, else
 * enable_thinking (true; smollm3-nothink: false). */
static int smollm3_thinks(const ChatTemplate *t, const ChatMessage *msgs) {
    const char *system = smollm3_system_message(msgs);
    if (strstr(system, "/no_think")) return 0;
    return strstr(system, "/think") || t->format == CHAT_FORMAT_SMOLLM3;
}

/* What opens an answer, and the generation prompt: without reasoning, an empty think block. */
static const char *smollm3_answer_head(int think) {
    return think ? "<|im_start|>assistant\n" : "<|im_start|>assistant\n<think>\n\n</think>\n";
}

/* The metadata, the reasoning mode, the custom instructions (else the default ones) and a blank
 * line; no <|im_end|>: the template closes the turn only after tools. */
static void smollm3_metadata(const ChatTemplate *t, const char *custom, int think, Buf *b) {
    char today[64];
    buf_str(b, "## Metadata\n\nKnowledge Cutoff Date: June 2025\nToday Date: ");
    buf_str(b, template_date(t, "%d %B %Y", SMOLLM3_DATE, today, sizeof today));
    buf_str(b, think ? "\nReasoning Mode: /think\n\n" : "\nReasoning Mode: /no_think\n\n");
    buf_str(b, "## Custom Instructions\n\n");
    buf_str(b, *custom ? custom : think ? SMOLLM3_THINK_SYSTEM : SMOLLM3_SYSTEM);
    buf_str(b, "\n\n");
}

/* SmolLM3's system turn, always there: with "/system_override" in the system message, its
 * instructions alone, closed; else the metadata. */
static void smollm3_system(const ChatTemplate *t, const char *system, int think, Buf *b) {
    int override = strstr(system, "/system_override") != NULL;
    char *custom = smollm3_instructions(system, override);
    buf_str(b, "<|im_start|>system\n");
    if (!custom) {
        b->oom = 1;
    } else if (override) {
        buf_str(b, custom);
        buf_str(b, "<|im_end|>\n");
    } else {
        smollm3_metadata(t, custom, think, b);
    }
    free(custom);
}

/* The system turn, then the user turns as ChatML's and the answers after their head, leading
 * newlines stripped; system messages render only in the system turn. */
static void render_smollm3(const ChatTemplate *t, const ChatMessage *msgs, int n, Buf *b) {
    int think = smollm3_thinks(t, msgs);
    smollm3_system(t, smollm3_system_message(msgs), think, b);
    for (int i = 0; i < n; i++) {
        size_t len = strlen(msgs[i].content);
        if (is_role(&msgs[i], "user")) chatml_turn(b, "user", msgs[i].content);
        if (!is_role(&msgs[i], "assistant")) continue;
        const char *answer = strip_newlines(msgs[i].content, &len, 1, 0);
        buf_str(b, smollm3_answer_head(think));
        buf_add(b, answer, len);
        buf_str(b, "<|im_end|>\n");
    }
}

static const char *generation_prompt(const ChatTemplate *t, const ChatMessage *msgs) {
    switch (t->format) {
    case CHAT_FORMAT_CHATML:
    case CHAT_FORMAT_QWEN3:
        return "<|im_start|>assistant\n";
    case CHAT_FORMAT_QWEN3_NO_THINKING: /* Qwen3's template under enable_thinking false */
        return "<|im_start|>assistant\n<think>\n\n</think>\n\n";
    case CHAT_FORMAT_SMOLLM3:
    case CHAT_FORMAT_SMOLLM3_NO_THINKING:
        return smollm3_answer_head(smollm3_thinks(t, msgs));
    case CHAT_FORMAT_LLAMA3:
    case CHAT_FORMAT_LLAMA31:
        return "<|start_header_id|>assistant<|end_header_id|>\n\n";
    case CHAT_FORMAT_ZEPHYR:
    case CHAT_FORMAT_PHI3:
        return "<|assistant|>\n";
    case CHAT_FORMAT_PHI4_MINI:
        return "<|assistant|>";
    case CHAT_FORMAT_GEMMA:
    case CHAT_FORMAT_GEMMA2:
        return "<start_of_turn>model\n";
    case CHAT_FORMAT_LLAMA2:
    case CHAT_FORMAT_MISTRAL:
    case CHAT_FORMAT_MISTRAL_V3:
    case CHAT_FORMAT_MISTRAL_LEGACY:
    case CHAT_FORMAT_MISTRAL_NEMO:
        return ""; /* none: the prompt ends with the user turn's [/INST] */
    case CHAT_FORMAT_PLAIN:
        return "Assistant:";
    }
    return "";
}

static int check_messages(const ChatMessage *msgs, int n, LfError *err) {
    if (n < 1) return lf_fail(err, "chat template: empty conversation");
    for (int i = 0; i < n; i++) {
        const char *r = msgs[i].role;
        if (!r || (strcmp(r, "system") && strcmp(r, "user") && strcmp(r, "assistant")))
            return lf_fail(err, "chat message %d: role \"%s\" is not system, user or assistant", i,
                           r ? r : "(null)");
        if (!msgs[i].content) return lf_fail(err, "chat message %d (%s): no content", i, r);
    }
    return 0;
}

int chat_render(const ChatTemplate *t, const ChatMessage *msgs, int n, int add_generation_prompt,
                char **out, size_t *len, LfError *err) {
    if (check_messages(msgs, n, err) || check_turns(t, msgs, n, err)) return -1;
    Buf b = {0};
    const MistralStyle *mistral = mistral_style(t->format);
    if (t->format == CHAT_FORMAT_LLAMA31) render_llama31(t, msgs, n, &b);
    if (t->format == CHAT_FORMAT_QWEN3 || t->format == CHAT_FORMAT_QWEN3_NO_THINKING)
        render_qwen3(msgs, n, &b);
    if (t->format == CHAT_FORMAT_SMOLLM3 || t->format == CHAT_FORMAT_SMOLLM3_NO_THINKING)
        render_smollm3(t, msgs, n, &b);
    if (t->format == CHAT_FORMAT_LLAMA2) render_llama2(t, msgs, n, &b);
    if (mistral) render_mistral(t, mistral, msgs, n, &b);
    if (t->format == CHAT_FORMAT_GEMMA || t->format == CHAT_FORMAT_GEMMA2)
        render_gemma(t, msgs, n, &b);
    for (int i = 0; i < n; i++) {
        if (t->format == CHAT_FORMAT_CHATML) render_chatml(t, &msgs[i], i, &b);
        if (t->format == CHAT_FORMAT_LLAMA3) render_llama3(&msgs[i], i, &b);
        if (t->format == CHAT_FORMAT_ZEPHYR) render_zephyr(t, &msgs[i], &b);
        if (t->format == CHAT_FORMAT_PHI3) render_phi3(&msgs[i], &b);
        if (t->format == CHAT_FORMAT_PHI4_MINI) tagged_turn(&b, &msgs[i], "", "<|end|>");
        if (t->format == CHAT_FORMAT_PLAIN) render_plain(&msgs[i], &b);
    }
    if (add_generation_prompt)
        buf_str(&b, generation_prompt(t, msgs));
    else if (t->format == CHAT_FORMAT_PHI3 || t->format == CHAT_FORMAT_PHI4_MINI) /* EOS ends */
        buf_str(&b, eos_text(t));
    buf_add(&b, "", 0); /* an empty rendering (Llama 2's of a lone system turn) is "" too */
    if (b.oom) {
        free(b.p);
        return lf_fail(err, "chat template %s: out of memory", t->name);
    }
    *out = b.p;
    *len = b.len;
    return 0;
}
